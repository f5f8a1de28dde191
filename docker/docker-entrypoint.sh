#!/bin/sh
# LexAlign container entry point: warn (on stderr) when HF_TOKEN is unset, then run the
# command, or bash when none is given. The token's value is never printed.
set -e

if [ -z "${HF_TOKEN:-}" ]; then
    echo "lexalign: warning: HF_TOKEN is not set; gated or private Hugging Face repos will fail (pass it with -e HF_TOKEN)" >&2
fi

if [ "$#" -eq 0 ]; then
    set -- bash
fi
exec "$@"
