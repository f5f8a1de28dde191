#!/usr/bin/env python3
"""`python export.py ...` — the same as `lexalign export`."""

import sys

from lexalign.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]], prog_name="export.py"))
