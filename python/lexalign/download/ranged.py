"""One file on several ranged connections (see docs/download.md): the file's own connection
starts with one request for everything left; readers add helper connections, each holding one
of the run's slots, while a part would still take long enough to be worth splitting."""

from __future__ import annotations

import threading

from .digest import Follower
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
    repo's files keep one each), and nothing polls while nothing can be gained."""
    queue = list(todo)
    lock = threading.Lock()
    halt = threading.Event()
    ranges_ok = threading.Event()
    errors: list[BaseException] = []
    helpers: list[threading.Thread] = []

    def take() -> Part | None:
        with lock:
            if queue:
                return queue.pop(0)
        return partial.split(t.part_bytes, SPLIT_WORTH_S)

    def work_to_do() -> bool:
        with lock:
            if queue:
                return True
        return partial.split(t.part_bytes, SPLIT_WORTH_S, take=False) is not None

    def attempt(part: Part, probe: bool = False) -> None:
        """One part, retried on its own after a transient error (the others go on)."""

        def once(_timeout: float) -> None:
            request_part(
                t, partial, follower, part, single=False, halt=halt, probe=probe, ok=ranges_ok,
                tick=grow,
            )  # fmt: skip

        what = f"downloading {t.name} (bytes {part.pos}-{part.end - 1})"
        if t.retrying is None:
            once(0)
        else:
            t.retrying(what, once)

    def work(part: Part) -> None:
        try:
            attempt(part)
        except BaseException as exc:
            errors.append(exc)
            halt.set()
        finally:
            if partial.save_due(SAVE_EVERY) or part.left == 0:
                partial.save()

    def helper() -> None:
        try:
            while not halt.is_set() and (part := take()) is not None:
                work(part)
        finally:
            if t.slots is not None:
                t.slots.release()

    def grow() -> None:
        """Start a helper if there is work for one and a free slot (never waits)."""
        if halt.is_set() or not ranges_ok.is_set() or not work_to_do():
            return
        with lock:
            if sum(h.is_alive() for h in helpers) >= t.connections - 1:
                return
            if t.slots is not None and not t.slots.acquire(blocking=False):
                return
            h = threading.Thread(target=helper, daemon=True, name="lexalign-part")
            helpers.append(h)
        h.start()

    first = take()
    assert first is not None
    partial.save()  # the record exists before any byte lands at an offset
    try:
        try:
            attempt(first, probe=True)
        finally:
            partial.save()
        while not halt.is_set() and not partial.complete():
            part = take()
            if part is not None:
                work(part)
                continue
            grow()
            halt.wait(TICK_S)  # the helpers read the rest; a split may come due
    except BaseException:
        halt.set()
        raise
    finally:
        halt.set()  # every helper stops: the file is in, or something failed
        for h in list(helpers):
            h.join()
        partial.save()
    if errors:
        raise next((e for e in errors if not isinstance(e, Cancelled)), errors[0])
