#!/usr/bin/env python3
"""`python align.py --config config/....yaml` — the same as `lexalign align`."""

import sys

from lexalign.cli import entry

if __name__ == "__main__":
    sys.exit(entry(["align", *sys.argv[1:]], prog_name="align.py"))
