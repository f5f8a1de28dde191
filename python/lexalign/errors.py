"""Errors that end a command with a clear one-line message and a defined exit code.

Exit codes (design §6): 0 ok, 1 runtime failure, 2 usage or config error, 130 interrupted.
"""

from __future__ import annotations

import os
import re

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{6,}")


class LexAlignError(Exception):
    """A failure the user can act on; the message is one line and says what to do."""

    exit_code = EXIT_FAILURE


class ConfigError(LexAlignError):
    """Bad configuration or usage (exit 2)."""

    exit_code = EXIT_USAGE


class RuntimeFailure(LexAlignError):
    """The command ran but failed (exit 1)."""

    exit_code = EXIT_FAILURE


def redact(text: str, *secrets: str | None) -> str:
    """Remove token values (the given secrets, HF_TOKEN, and anything shaped like `hf_…`)."""
    out = str(text)
    for secret in (*secrets, os.environ.get("HF_TOKEN")):
        if secret and len(secret) >= 4:
            out = out.replace(secret, "***")
    return _TOKEN_RE.sub("hf_***", out)


def one_line(text: str, limit: int = 400) -> str:
    """Collapse a (possibly multi-line) message into one line."""
    line = " ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return line if len(line) <= limit else line[: limit - 1] + "…"
