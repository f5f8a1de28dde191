"""The first and last milliseconds of a short CLI process (a download of a small repo is over in
~0.2 s, and a third of that was the garbage collector): while the modules a command runs with
are imported, Python's cyclic GC repeatedly walks every object imported so far, and at exit it
walks them all once more — objects that live until the process ends anyway. A short command
holds the collector off while it imports (`hold`), then freezes what it imported into the
permanent generation (`gc.freeze`, meant for exactly this) and turns the collector back on for
what the run itself allocates (`settled`). At the end, a command that asked for it (`quick_exit`:
the download) skips the interpreter's teardown — deallocating every object of ~600 modules, ~5 ms
of the same small download — once its output is flushed and its `atexit` handlers have run, and
only when no other thread is left (`end`). Only in a process started by an entry point (`entry`
in cli.py): a test calling `main()` in-process keeps its collector and its process as they were."""

from __future__ import annotations

import gc
import os
import sys
import threading

_entry = False
_held = False
_quick = False


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


def quick_exit() -> None:
    """This command's process may end without the interpreter's teardown (entry processes only)."""
    global _quick
    _quick = _entry


def end(code: int) -> None:
    """The command is over: end the process with `code` now if it may (see the module's text);
    otherwise return, and the process ends as usual. The same `atexit` handlers run either way
    (a coverage collector's, logging's, concurrent.futures')."""
    if not _quick or threading.active_count() != 1:
        return  # a thread still running is joined by the normal exit
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return  # a closed or broken stream: the normal exit reports it
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
