"""The partial file of one download and the byte ranges ("parts") it is made of.

A file fetched on one connection is one part, written in order: the partial file's length is
the progress (a plain prefix, resumable with `Range: bytes=N-`). A file that may be fetched on
several connections ("ranged": larger than a part, more than one connection allowed) starts as
one part too, and is split while it downloads (`split`): a connection that becomes free takes
the second half of the part with the most bytes left, when that part would take long enough to
be worth it. Parts are written at their offsets into the same partial file (no second copy);
their progress is kept next to it in `<key>.parts.json` (written with temp + rename, always
behind the bytes on disk), so after a drop or a Ctrl-C every part resumes at its exact byte.
A partial file whose state file is gone or does not fit is not trusted: it starts over.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from ..io import atomic_write_text

STATE_VERSION = 1


def cache_key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:32]


def cache_dir(local_dir: Path) -> Path:
    return Path(local_dir) / ".cache" / "lexalign"


def partial_path(local_dir: Path, name: str) -> Path:
    return cache_dir(local_dir) / f"{cache_key(name)}.incomplete"


def lock_path(local_dir: Path, name: str) -> Path:
    """The file lock.py locks while a run fetches `name` (next to its partial file)."""
    return cache_dir(local_dir) / f"{cache_key(name)}.lock"


def state_path(partial: Path) -> Path:
    return partial.with_suffix(".parts.json")


@dataclass
class Part:
    start: int
    end: int  # exclusive; moves down when the part is split
    done: int = 0  # bytes written from `start`
    active: bool = False  # a connection is reading it
    since: float = 0.0  # when its current request started (monotonic)
    got: int = 0  # bytes of the current request
    inflight: int = 0  # bytes being written past `pos` right now (a split stays behind them)

    @property
    def pos(self) -> int:
        return self.start + self.done

    @property
    def left(self) -> int:
        return self.end - self.pos


class Partial:
    """The partial file of one remote file: its parts, their progress, the file descriptor the
    transfer threads write through (`os.pwrite`, no shared file position), and the state file.
    Thread-safe: `wrote` may be called from several connections at once."""

    def __init__(self, path: Path, size: int | None, parts: list[Part], ranged: bool) -> None:
        self.path = path
        self.size = size
        self.parts = parts
        self.ranged = ranged
        self.lock = threading.Lock()
        self.fd: int | None = None
        self._first_open = 0  # index of the first part not complete (for the watermark)
        self._since_save = 0

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def load(
        cls, local_dir: Path, name: str, size: int | None, part_bytes: int, connections: int
    ) -> Partial:
        """What is on disk for `name`, or a fresh plan: several parts when the file is larger
        than one part and more than one connection is allowed, else one."""
        path = partial_path(local_dir, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = _read_state(state_path(path), size) if size is not None else None
        if state is not None and path.is_file():
            return cls(path, size, state, ranged=True)
        state_path(path).unlink(missing_ok=True)
        have = path.stat().st_size if path.is_file() else 0
        if size is not None and have >= size and size > 0:
            have = 0  # as large as the file or larger: not a prefix we can trust
            path.unlink()
        if have == 0 and size is not None and connections > 1 and size > part_bytes:
            path.unlink(missing_ok=True)
            return cls(path, size, [Part(0, size)], ranged=True)
        end = size if size is not None else -1
        return cls(path, size, [Part(0, end, have)], ranged=False)

    def open(self) -> None:
        if self.fd is None:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    # -- progress ------------------------------------------------------------------------------

    def have(self) -> int:
        return sum(p.done for p in self.parts)

    def watermark(self) -> int:
        """How many bytes from the start of the file are written without a gap."""
        with self.lock:
            return self._watermark()

    def _watermark(self) -> int:
        while self._first_open < len(self.parts):
            p = self.parts[self._first_open]
            if p.end >= 0 and p.left > 0 or p.end < 0:
                return p.pos
            self._first_open += 1
        return self.parts[-1].end if self.parts else 0

    def write(self, part: Part, data: memoryview) -> int:
        """Write what of `data` still belongs to the part (a split may have moved its end
        below what the connection has already received) at the part's position; the new
        watermark."""
        assert self.fd is not None
        with self.lock:
            pos = part.pos
            n = len(data) if part.end < 0 else max(0, min(len(data), part.end - pos))
            part.inflight = n
        written = 0
        try:
            while written < n:
                written += os.pwrite(self.fd, data[written:n], pos + written)
        finally:
            with self.lock:
                part.inflight = 0
        with self.lock:
            part.done += n
            part.got += n
            self._since_save += n
            return self._watermark()

    def reading(self, part: Part, on: bool) -> None:
        """A connection starts (or stops) reading `part`: its rate is measured from now."""
        import time

        with self.lock:
            part.active, part.since, part.got = on, time.monotonic(), 0

    def split(
        self, min_bytes: int, worth_s: float, take: bool = True, below_rate: float = float("inf")
    ) -> Part | None:
        """A new part made of the second half of the active part with the most bytes left, if
        that part has at least 2 × `min_bytes` left, would take `worth_s` or more at its
        current rate, and that rate is below `below_rate` bytes/s; its reader stops at the new
        boundary (behind the bytes it is writing right now). `take=False`: only say whether
        there is one (the part it would split)."""
        import time

        now = time.monotonic()
        with self.lock:
            best = None
            for i, p in enumerate(self.parts):
                left = p.left
                if not p.active or p.end < 0 or left < 2 * min_bytes:
                    continue
                elapsed = now - p.since
                if elapsed < 0.2 or p.got == 0:
                    continue  # no rate yet
                rate = p.got / elapsed
                if left / rate < worth_s or rate >= below_rate:
                    continue
                if best is None or left > self.parts[best].left:
                    best = i
            if best is None:
                return None
            old = self.parts[best]
            cut = max(old.pos + old.left // 2, old.pos + old.inflight)
            if old.end - cut < min_bytes:
                return None
            if not take:
                return old
            new = Part(cut, old.end)
            old.end = cut
            self.parts.insert(best + 1, new)
            return new

    def save_due(self, every: int) -> bool:
        with self.lock:
            return self.ranged and self._since_save >= every

    def complete(self) -> bool:
        with self.lock:
            return all(p.end >= 0 and p.left <= 0 for p in self.parts)

    def save(self) -> None:
        """Record every part's progress (ranged files only; behind the bytes on disk)."""
        if not self.ranged:
            return
        with self.lock:
            self._since_save = 0
            doc = {
                "version": STATE_VERSION,
                "size": self.size,
                "parts": [[p.start, p.end, p.done] for p in self.parts],
            }
        atomic_write_text(state_path(self.path), json.dumps(doc))

    # -- changes of plan -----------------------------------------------------------------------

    def restart(self) -> None:
        """Forget every byte: one part from zero, on one connection."""
        self.close()
        self.path.unlink(missing_ok=True)
        state_path(self.path).unlink(missing_ok=True)
        end = self.size if self.size is not None else -1
        with self.lock:
            self.parts = [Part(0, end, 0)]
            self.ranged = False
            self._first_open = 0

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
        state_path(self.path).unlink(missing_ok=True)

    def finished(self) -> None:
        """Every part is in: the state file is no longer needed."""
        self.close()
        state_path(self.path).unlink(missing_ok=True)


def _read_state(path: Path, size: int) -> list[Part] | None:
    """The parts recorded for a ranged partial file, or None when there is no usable record
    (missing, unreadable, for another size, parts that do not tile [0, size))."""
    try:
        doc = json.loads(path.read_text())
        if doc.get("version") != STATE_VERSION or doc.get("size") != size:
            return None
        parts = [Part(int(s), int(e), int(d)) for s, e, d in doc["parts"]]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    at = 0
    for p in parts:
        if p.start != at or p.end <= p.start or not 0 <= p.done <= p.end - p.start:
            return None
        at = p.end
    return parts if at == size else None
