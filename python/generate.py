#!/usr/bin/env python3
"""`python generate.py ...` — the same as `lexalign generate`."""

import sys

from lexalign.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]], prog_name="generate.py"))
