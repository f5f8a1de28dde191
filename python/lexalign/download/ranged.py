"""One file on several ranged connections (see docs/download.md): the file's own connection
starts with one request for everything left; readers add helper connections, each holding one
of the run's slots, while a part would still take long enough to be worth splitting."""

from __future__ import annotations

import threading

from .digest import Follower, hash_rate
from .parts import Part, Partial
from .transfer import SAVE_EVERY, SPLIT_WORTH_S, TICK_S, Cancelled, Transfer, request_part

__all__ = ["fetch_parts"]


def fetch_parts(t: Transfer, partial: Partial, follower: Follower, todo: list[Part]) -> None:
    """The parts of one file on up to `t.connections` connections. This thread (the file's own
    connection) starts with the first part left. Once the server has answered it with the
    range asked for, every reader looks every TICK_S for more to do — a part left from an
    earlier run, else the second half of the part with the most bytes left when that part
    would still take SPLIT_WORTH_S at its rate (parts.Partial.split) — and when there is, and
    the run has a free connection slot, starts a helper thread holding that slot. So a fast
    link stays on one connection, a file gets more only while the run has free ones (a sharded
    repo's files keep one each), and nothing polls while nothing can be gained.

    A connection already delivering half of what one core can hash (sha256, measured) is not
    split: the file's hash follows only its first part, so what a second connection brings in
    is hashed after the last byte; below that rate the transfer gains more than the hash tail
    costs, above it the machine, not the link, is the limit (a mirror on loopback, measured:
    splitting there made a 1 GB file 0.3–0.6 s slower, docs/benchmarks-notes.md)."""
    _Parts(t, partial, follower, todo).run()


class _Parts:
    """The state of one file's ranged download: the queue of parts, the helpers, the first
    error (which halts every reader)."""

    def __init__(self, t: Transfer, partial: Partial, follower: Follower, todo: list[Part]):
        self.t, self.partial, self.follower = t, partial, follower
        self.queue = list(todo)
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.ranges_ok = threading.Event()
        self.errors: list[BaseException] = []
        self.helpers: list[threading.Thread] = []

    def take(self) -> Part | None:
        with self.lock:
            if self.queue:
                return self.queue.pop(0)
        return self.partial.split(self.t.part_bytes, SPLIT_WORTH_S, below_rate=hash_rate() / 2)

    def work_to_do(self) -> bool:
        with self.lock:
            if self.queue:
                return True
        return (
            self.partial.split(
                self.t.part_bytes, SPLIT_WORTH_S, take=False, below_rate=hash_rate() / 2
            )
            is not None
        )

    def attempt(self, part: Part, probe: bool = False) -> None:
        """One part, retried on its own after a transient error (the others go on)."""
        t = self.t

        def once(_timeout: float) -> None:
            request_part(
                t, self.partial, self.follower, part, single=False, halt=self.halt, probe=probe,
                ok=self.ranges_ok, tick=self.grow,
            )  # fmt: skip

        what = f"downloading {t.name} (bytes {part.pos}-{part.end - 1})"
        if t.retrying is None:
            once(0)
        else:
            t.retrying(what, once)

    def work(self, part: Part) -> None:
        try:
            self.attempt(part)
        except BaseException as exc:
            self.errors.append(exc)
            self.halt.set()
        finally:
            if self.partial.save_due(SAVE_EVERY) or part.left == 0:
                self.partial.save()

    def helper(self) -> None:
        try:
            while not self.halt.is_set() and (part := self.take()) is not None:
                self.work(part)
        finally:
            if self.t.slots is not None:
                self.t.slots.release()

    def grow(self) -> None:
        """Start a helper if there is work for one and a free slot (never waits)."""
        if self.halt.is_set() or not self.ranges_ok.is_set() or not self.work_to_do():
            return
        with self.lock:
            if sum(h.is_alive() for h in self.helpers) >= self.t.connections - 1:
                return
            if self.t.slots is not None and not self.t.slots.acquire(blocking=False):
                return
            h = threading.Thread(target=self.helper, daemon=True, name="lexalign-part")
            self.helpers.append(h)
        h.start()

    def run(self) -> None:
        first = self.take()
        assert first is not None
        self.partial.save()  # the record exists before any byte lands at an offset
        try:
            try:
                self.attempt(first, probe=True)
            finally:
                self.partial.save()
            while not self.halt.is_set() and not self.partial.complete():
                part = self.take()
                if part is not None:
                    self.work(part)
                    continue
                self.grow()
                self.halt.wait(TICK_S)  # the helpers read the rest; a split may come due
        except BaseException:
            self.halt.set()
            raise
        finally:
            self.halt.set()  # every helper stops: the file is in, or something failed
            for h in list(self.helpers):
                h.join()
            self.partial.save()
        if self.errors:
            raise next((e for e in self.errors if not isinstance(e, Cancelled)), self.errors[0])
