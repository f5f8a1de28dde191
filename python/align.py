#!/usr/bin/env python3
"""`python align.py --config config/....yaml` — the same as `lexalign align`."""

import sys

from lexalign.cli import main

if __name__ == "__main__":
    sys.exit(main(["align", *sys.argv[1:]], prog_name="align.py"))
