#!/usr/bin/env python3
"""`python export.py ...` — the same as `lexalign export`."""

import sys

from lexalign.cli import entry

if __name__ == "__main__":
    sys.exit(entry(["export", *sys.argv[1:]], prog_name="export.py"))
