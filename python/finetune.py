#!/usr/bin/env python3
"""`python finetune.py --config config/....yaml` — the same as `lexalign finetune`."""

import sys

from lexalign.cli import entry

if __name__ == "__main__":
    sys.exit(entry(["finetune", *sys.argv[1:]], prog_name="finetune.py"))
