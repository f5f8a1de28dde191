"""The first and last milliseconds of a short CLI process (a download of a small repo is over in
~0.2 s, and a third of that was the garbage collector): while the modules a command runs with
are imported, Python's cyclic GC repeatedly walks every object imported so far, and at exit it
walks them all once more — objects that live until the process ends anyway. A short command
holds the collector off while it imports (`hold`), then freezes what it imported into the
permanent generation (`gc.freeze`, meant for exactly this) and turns the collector back on for
what the run itself allocates (`settled`). Only in a process started by an entry point
(`entry` in cli.py): a test calling `main()` in-process keeps its collector as it was."""

from __future__ import annotations

import gc

_entry = False
_held = False


def process_entry() -> None:
    """This process runs one CLI command and ends with it."""
    global _entry
    _entry = True


def hold() -> None:
    """No cyclic collections until `settled` (entry processes only)."""
    global _held
    if _entry and not _held and gc.isenabled():
        gc.disable()
        _held = True


def settled() -> None:
    """The command has imported what it runs with: freeze those objects, collect again."""
    global _held
    if _held:
        gc.freeze()
        gc.enable()
        _held = False
