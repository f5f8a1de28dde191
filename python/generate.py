#!/usr/bin/env python3
"""`python generate.py ...` — the same as `lexalign generate`."""

import sys

from lexalign.cli import entry

if __name__ == "__main__":
    sys.exit(entry(["generate", *sys.argv[1:]], prog_name="generate.py"))
