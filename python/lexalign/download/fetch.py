"""One file over HTTP, bounded: the Hub's `resolve/` URL for a resolved commit, fetched with
huggingface_hub's session (its headers, proxies and CA settings) but read by us, so that

- a file larger than a part (`part_size_mb`) is fetched as several range requests at once (up
  to `max_connections_per_file`, each extra connection taken from the run's `max_workers`
  budget), the parts written at their offsets into the one partial file (parts.py);
- a server that ignores ranges (200 to the first range request) gets one connection, and its
  body is the file: nothing is requested twice;
- a transfer is cut at the run's deadline (checked on every read, and no single read waits
  longer than `timeout_s` or the time left), whatever the server does: stalls, drips, bodies
  that never end;
- no more than the announced size is accepted, per part too: a longer body, or a range answer
  for other bytes than asked (Content-Range), is an error and the partial file is removed;
- partial files resume: one connection with `Range: bytes=N-`, parts each at their own byte; a
  416 answer restarts from zero;
- bytes are received into one large reusable buffer per connection and written with
  `os.pwrite` (no per-chunk objects), and hashed while they arrive (digest.py);
- the partial file lives under `local_dir/.cache/lexalign/` and becomes the real file only by
  rename, after the caller checked it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import RuntimeFailure
from .deadline import Deadline, DeadlineExceeded
from .digest import Follower
from .parts import Part, Partial, partial_path

__all__ = ["Cancelled", "TooLarge", "BodyEnded", "RangesUnreliable", "fetch", "abort"]
__all__ += ["partial_path", "Transfer"]

BUFFER = 4 << 20
SPLIT_WORTH_S = 1.0  # split a part only when it would take this long at its current rate
TICK_S = 0.25  # how often a reader looks for work for another connection
SAVE_EVERY = 64 << 20  # record the parts' progress after this many new bytes
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class Cancelled(Exception):
    """Ctrl-C in the main thread: stop this transfer, keep the partial file for a resume."""


class TooLarge(RuntimeFailure):
    """The server sent more bytes than the file (or the part) has."""


class BodyEnded(ConnectionResetError):
    """The body ended early: transient (the retry resumes where it stopped)."""


class RangesUnreliable(RuntimeFailure):
    """A range answer for other bytes than were asked: the partial file is discarded and the
    caller fetches the file again on one connection."""


class _Collapse(BaseException):
    """The server ignored the range of the first request: its body is the whole file. (Like
    _StartOver, a change of plan, not an error: BaseException passes the retry policy.)"""

    def __init__(self, resp) -> None:
        self.resp = resp


@dataclass
class Transfer:
    """What one file's download needs; `fetch` runs it."""

    session: object
    url: str
    headers: dict[str, str]
    local_dir: Path
    name: str
    size: int | None
    git_sha1: bool
    deadline: Deadline
    timeout_s: float
    stop: threading.Event
    on_bytes: Callable[[int], None] = lambda n: None
    active: set | None = None
    connections: int = 1  # at most, for this file
    part_bytes: int = 16 << 20
    slots: threading.Semaphore | None = None  # the run's connection budget (extra connections)
    # runs one part under the run's retry policy: (what, fn(timeout)) -> fn's result
    retrying: Callable[[str, Callable[[float], object]], object] | None = None


def fetch(t: Transfer) -> tuple[Path, str, str]:
    """Download `t.name` into its partial file; (partial path, sha256, git blob sha1 or "")."""
    partial = Partial.load(t.local_dir, t.name, t.size, t.part_bytes, t.connections)
    hashing = [Follower(partial.path, t.size, t.git_sha1)]  # the current one (a restart: new)
    have = partial.have()
    if have:
        t.on_bytes(have)
    try:
        partial.open()
        hashing[0].advance(partial.watermark())
        _run(t, partial, hashing)
        size = partial.have() if t.size is None else t.size
        sha256, git = hashing[0].finish(size)
        partial.finished()
        return partial.path, sha256, git
    except TooLarge:
        partial.discard()
        raise
    except RangesUnreliable:
        t.on_bytes(-partial.have())
        partial.discard()
        raise
    finally:
        hashing[0].discard()
        partial.close()


def _run(t: Transfer, partial: Partial, hashing: list[Follower]) -> None:
    """Every part in; `hashing[0]` the follower of the file (a new one when it started over)."""

    def over() -> Follower:
        t.on_bytes(-partial.have())
        hashing[0].discard()
        partial.restart()
        partial.open()
        hashing[0] = Follower(partial.path, t.size, t.git_sha1)
        return hashing[0]

    follower = hashing[0]
    for _restart in range(2):
        todo = [p for p in partial.parts if p.end < 0 or p.left > 0]
        if not todo:
            return
        try:
            if partial.ranged:
                _ranged(t, partial, follower, todo)
            else:
                _part(t, partial, follower, todo[0], single=True)
            return
        except _Collapse as c:
            # Ranges ignored: this body is the whole file, on one connection.
            try:
                follower = over()
                whole = partial.parts[0]
                bound = whole.left if whole.end >= 0 else None
                _read(t, partial, follower, whole, c.resp, bound, single=True)
            finally:
                _closed(t, c.resp)
            return
        except _StartOver:
            follower = over()
    raise RuntimeFailure(f"{t.name}: the server refused every range; try again later")


class _StartOver(BaseException):
    """416: the server says our range is unsatisfiable — start the file over."""


def _ranged(t: Transfer, partial: Partial, follower: Follower, todo: list[Part]) -> None:
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
            _part(
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


def _part(
    t: Transfer,
    partial: Partial,
    follower: Follower,
    part: Part,
    *,
    single: bool,
    halt: threading.Event | None = None,
    probe: bool = False,
    ok: threading.Event | None = None,
    tick: Callable[[], None] | None = None,
) -> None:
    """Request what is left of `part` and write it; again while the server answers a range with
    fewer bytes than asked (allowed), but never after an answer that brought nothing. `ok` is
    set once the server answered a range as asked."""
    while part.end < 0 or part.left > 0:
        if halt is not None and halt.is_set() and not partial.complete():
            return  # another part failed; this one keeps what it has
        before = part.done
        left = t.deadline.check(f"downloading {t.name}")
        wait = max(1.0, min(t.timeout_s, left))
        req = dict(t.headers)
        req["Accept-Encoding"] = "identity"
        if not single:
            req["Range"] = f"bytes={part.pos}-{part.end - 1}"
        elif part.pos:
            req["Range"] = f"bytes={part.pos}-"
        resp = t.session.get(t.url, headers=req, stream=True, timeout=(wait, wait))
        if t.active is not None:
            t.active.add(resp)
        handed = False
        partial.reading(part, True)
        try:
            if resp.status_code == 416 and "Range" in req:
                raise _StartOver()
            from huggingface_hub.utils import hf_raise_for_status

            hf_raise_for_status(resp)
            bound = part.left if part.end >= 0 else None
            if "Range" in req and resp.status_code == 200:
                if probe or single:
                    handed = True
                    raise _Collapse(resp)
                raise RangesUnreliable(
                    f"{t.name}: the server answered a range request with the whole file"
                )
            if "Range" in req:
                bound = _check_range(t, part, resp)
                if ok is not None:
                    ok.set()
            _read(t, partial, follower, part, resp, bound, single=single, halt=halt, tick=tick)
        finally:
            partial.reading(part, False)
            if not handed:
                _closed(t, resp)
        if part.end >= 0 and part.left <= 0:
            return
        if halt is not None and halt.is_set():
            return
        if part.done == before:
            raise BodyEnded(f"{t.name}: the server sent no bytes at {part.pos}")
        if part.end < 0:
            return  # unknown size: the body was the file
        probe = False


def _check_range(t: Transfer, part: Part, resp) -> int:
    """The number of bytes the answer to a range request holds, after checking that they are
    the bytes asked for (at the part's position, inside the part, of a file of our size)."""
    m = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
    last = part.end - 1 if part.end >= 0 else None
    ok = (
        resp.status_code == 206
        and m is not None
        and int(m.group(1)) == part.pos
        and (last is None or int(m.group(2)) <= last)
        and int(m.group(2)) >= part.pos
        and (m.group(3) == "*" or t.size is None or int(m.group(3)) == t.size)
    )
    if not ok:
        raise RangesUnreliable(
            f"{t.name}: asked for bytes {part.pos}-{'' if last is None else last}, the server answered "
            f"{resp.status_code} with Content-Range {resp.headers.get('Content-Range')!r}"
        )
    assert m is not None
    return int(m.group(2)) - int(m.group(1)) + 1


def _closed(t: Transfer, resp) -> None:
    if t.active is not None:
        t.active.discard(resp)
    resp.close()


class _Body:
    """Reads a response body into a caller's buffer: straight from the socket (one recv per
    call, no objects per chunk) when it is a plain Content-Length body, else through urllib3
    (chunked or compressed bodies)."""

    def __init__(self, resp) -> None:
        self.resp = resp
        hr = getattr(resp.raw, "_fp", None)  # http.client.HTTPResponse
        encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
        self.hr = (
            hr
            if hr is not None
            and encoding in ("", "identity")
            and not getattr(hr, "chunked", True)
            and isinstance(getattr(hr, "length", None), int)
            and hasattr(getattr(hr, "fp", None), "readinto1")
            else None
        )

    def readinto(self, view: memoryview) -> int:
        hr = self.hr
        if hr is not None:
            if hr.fp is None or hr.length <= 0:
                return 0
            n = hr.fp.readinto1(view[: min(len(view), hr.length)])
            hr.length -= n
            return n
        chunk = self.resp.raw.read1(len(view), decode_content=True)
        view[: len(chunk)] = chunk
        return len(chunk)


def _read(
    t: Transfer,
    partial: Partial,
    follower: Follower,
    part: Part,
    resp,
    bound: int | None,
    *,
    single: bool,
    halt: threading.Event | None = None,
    tick: Callable[[], None] | None = None,
) -> None:
    """Write the body at the part's position: at most `bound` bytes (one more is an error);
    a body that ends before its length is BodyEnded (transient: the retry resumes). `tick`
    runs about every TICK_S while bytes arrive."""
    import time

    body = _Body(resp)
    buf = bytearray(BUFFER)
    view = memoryview(buf)
    got = 0
    next_tick = time.monotonic() + TICK_S
    while True:
        if t.stop.is_set():
            raise Cancelled(t.name)
        if halt is not None and halt.is_set():
            return
        if t.deadline.remaining() <= 0:
            raise DeadlineExceeded(
                f"deadline_s={t.deadline.seconds:g} exceeded while downloading {t.name} "
                f"({partial.have()} of {t.size if t.size is not None else '?'} bytes kept; run again to resume, or raise deadline_s)"
            )
        room = len(view) if bound is None else min(len(view), bound - got + 1)
        n = body.readinto(view[:room])
        if not n:
            break
        if bound is not None and got + n > bound:
            raise TooLarge(
                f"{t.name}: the server sent more than the "
                + (
                    f"{t.size} bytes it announced"
                    if single
                    else f"{bound} bytes of the range at {part.pos - got}"
                )
                + "; stopped reading and removed the partial file (a broken mirror? check HF_ENDPOINT)"
            )
        before = part.done
        follower.advance(partial.write(part, view[:n]))
        got += n
        t.on_bytes(part.done - before)
        if partial.save_due(SAVE_EVERY):
            partial.save()
        if tick is not None and time.monotonic() >= next_tick:
            next_tick = time.monotonic() + TICK_S
            tick()
        if part.end >= 0 and part.left <= 0 and not single:
            return  # the part is in (a split may have moved its end before the body's)
    if bound is not None and got < bound:
        raise BodyEnded(f"{t.name}: the body ended after {partial.have()} of {t.size} bytes")


def abort(responses: set) -> None:
    """Unblock transfers waiting on a read (Ctrl-C): shut their sockets down."""
    import socket

    for resp in list(responses):
        conn = getattr(resp.raw, "_connection", None) or getattr(resp.raw, "connection", None)
        sock = getattr(conn, "sock", None)
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
