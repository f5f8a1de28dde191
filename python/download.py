#!/usr/bin/env python3
"""`python download.py --config config/....yaml` — the same as `lexalign download`."""

import sys

from lexalign.cli import main

if __name__ == "__main__":
    sys.exit(main(["download", *sys.argv[1:]], prog_name="download.py"))
