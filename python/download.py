#!/usr/bin/env python3
"""`python download.py --config config/....yaml` — the same as `lexalign download`."""

import sys

from lexalign.cli import entry

if __name__ == "__main__":
    sys.exit(entry(["download", *sys.argv[1:]], prog_name="download.py"))
