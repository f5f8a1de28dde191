"""One writer per partial file, across processes: two runs into one folder (two terminals, a CI
matrix sharing a cache, a retry started while the first still runs) take a lock per file
(`flock` on `<key>.lock` next to the partial file) for as long as they fetch, check and move it.

The holder writes who it is into the lock file (pid, host, command, start time), so a run that
finds the file taken says which run has it. It waits for that run (then finds the file in place
and keeps it), or stops at the deadline or on Ctrl-C naming it. A holder that died holds
nothing: the kernel drops its lock, and the next run resumes its partial file.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .deadline import Deadline, DeadlineExceeded

POLL_S = 0.2
_warned: set[str] = set()


def _unlockable(path: Path, warn: Callable[[str], None]) -> None:
    folder = str(path.parent)
    if folder not in _warned:
        _warned.add(folder)
        warn(
            f"{folder} cannot hold file locks (a network filesystem without lock support?): "
            "do not start two downloads into it at once"
        )


class Interrupted(Exception):
    """Ctrl-C while waiting for another run's lock."""


def _owner() -> str:
    cmd = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:200]
    return json.dumps(
        {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": cmd,
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    )


def describe(path: Path) -> str:
    """Who holds the lock at `path`, in words (best effort: the holder may just be starting)."""
    try:
        doc = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        doc = {}
    if not isinstance(doc, dict) or "pid" not in doc:
        return "another download run"
    return (
        f"another download run (pid {doc['pid']} on {doc.get('host', '?')}, "
        f"`{doc.get('command', '?')}`, since {doc.get('since', '?')})"
    )


def _try(path: Path, warn: Callable[[str], None]) -> int | None:
    """The locked file descriptor, or None when another process holds it."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError as exc:
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            _unlockable(path, warn)
            return fd  # no locks on this filesystem: one writer is not guaranteed here
        os.close(fd)
        raise
    except BaseException:
        os.close(fd)
        raise
    try:
        same = os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        same = False
    if not same:  # the holder removed it as we opened it: take the new one
        os.close(fd)
        return _try(path, warn)
    return fd


@contextmanager
def held(
    path: Path,
    what: str,
    *,
    deadline: Deadline,
    stop: threading.Event,
    waiting: Callable[[str], None],
) -> Iterator[None]:
    """Hold the lock at `path` for `what` (a file of a repo), waiting for another holder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    told = False
    while (fd := _try(path, waiting)) is None:
        holder = describe(path)
        if not told:
            waiting(f"{what}: {holder} is fetching it into this folder; waiting for it")
            told = True
        if stop.wait(POLL_S):
            raise Interrupted(what)
        if deadline.remaining() <= 0:
            raise DeadlineExceeded(
                f"deadline_s={deadline.seconds:g} exceeded while waiting for {holder} to finish {what}; "
                "let it finish (or stop it), then run again"
            )
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, _owner().encode(), 0)
        yield
    finally:
        try:
            path.unlink(missing_ok=True)  # while still held: a waiter re-checks the inode
        finally:
            os.close(fd)
