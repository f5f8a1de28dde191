"""The sha256 (and git blob sha1) of a partial file, computed while it is being written: a
thread follows the file's watermark (the bytes written without a gap from its start) and hashes
what is new, reading it back from the page cache into one reusable buffer. hashlib and
`os.preadv` release the GIL, so hashing overlaps with receiving.

On one connection the watermark is the whole download; with several ranged connections it is
the first part's progress, then jumps as the parts behind it are complete — whatever is left
when the last byte arrives is hashed in one pass then (docs/benchmarks-notes.md measures that
tail)."""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from pathlib import Path

BUFFER = 8 << 20


@functools.cache
def hash_rate() -> float:
    """This machine's sha256 rate on one core, bytes/s (measured once per process on 8 MB,
    ~7 ms; only asked when a file is about to be split: ranged.py)."""
    import time

    block = bytes(1 << 20)
    h = hashlib.sha256(block)  # warm
    start = time.perf_counter()
    for _ in range(8):
        h.update(block)
    return 8 * len(block) / max(time.perf_counter() - start, 1e-9)


class Follower:
    def __init__(self, path: Path, size: int | None, git_sha1: bool) -> None:
        self.path = path
        # no larger than the file: a buffer's pages are touched when it is made (~0.5 ms per MB)
        self.buffer = BUFFER if size is None else max(1, min(BUFFER, size))
        self.sha = hashlib.sha256()
        self.git = hashlib.sha1(b"blob %d\0" % size) if git_sha1 and size is not None else None
        self.pos = 0  # bytes hashed
        self.target = 0  # bytes known to be written without a gap
        self.closed = False
        self.error: BaseException | None = None
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True, name="lexalign-sha256")
        self.thread.start()

    def advance(self, watermark: int) -> None:
        with self.cond:
            if watermark > self.target:
                self.target = watermark
                self.cond.notify()

    def _run(self) -> None:
        view = memoryview(bytearray(self.buffer))
        fd = None
        try:
            while True:
                with self.cond:
                    while self.target <= self.pos and not self.closed:
                        self.cond.wait()
                    upto = self.target
                    if upto <= self.pos:
                        return  # closed, everything hashed
                if fd is None:
                    fd = os.open(self.path, os.O_RDONLY)
                while self.pos < upto:
                    n = os.preadv(fd, [view[: min(self.buffer, upto - self.pos)]], self.pos)
                    if n <= 0:
                        raise OSError(f"{self.path}: ended at {self.pos} bytes, {upto} expected")
                    self.sha.update(view[:n])
                    if self.git is not None:
                        self.git.update(view[:n])
                    self.pos += n
        except BaseException as exc:  # noqa: BLE001 - handed to finish()
            self.error = exc
        finally:
            if fd is not None:
                os.close(fd)

    def finish(self, size: int) -> tuple[str, str]:
        """Hash up to `size` and stop: (sha256, git blob sha1 or "")."""
        self.advance(size)
        self.discard()
        if self.error is not None:
            raise self.error
        if self.pos != size:
            raise OSError(f"{self.path}: hashed {self.pos} of {size} bytes")
        return self.sha.hexdigest(), self.git.hexdigest() if self.git is not None else ""

    def discard(self) -> None:
        """Stop the thread (idempotent)."""
        with self.cond:
            self.closed = True
            self.cond.notify()
        self.thread.join()
