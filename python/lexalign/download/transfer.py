"""One request of a download (fetch.py, ranged.py use it): what a transfer needs
(`Transfer`), its errors, and reading one answer — the range checked against what was asked
(Content-Range), the body received straight from the socket into one reusable buffer and
written at the part's position, never more than the range holds, cut at the deadline and on
Ctrl-C."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import RuntimeFailure
from .deadline import Deadline, DeadlineExceeded
from .digest import Follower
from .parts import Part, Partial
from .stated import Stated

BUFFER = 4 << 20
SPLIT_WORTH_S = 1.0  # split a part only when it would take this long at its current rate
TICK_S = 0.25  # how often a reader looks for work for another connection
SAVE_EVERY = 64 << 20  # record the parts' progress after this many new bytes
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class Cancelled(Exception):
    """Ctrl-C in the main thread: stop this transfer, keep the partial file for a resume."""


class TooLarge(RuntimeFailure):
    """The server sent more bytes than the file (or the part) has."""


class BodyEnded(ConnectionResetError):
    """The body ended early: transient (the retry resumes where it stopped)."""


class RangesUnreliable(RuntimeFailure):
    """A range answer for other bytes than were asked: the partial file is discarded and the
    caller fetches the file again on one connection."""


class PlanChange(Exception):
    """Not a failure but a change of plan that the caller of a transfer acts on (Collapse,
    StartOver): the retry policy passes it on untouched (retry.Retrier)."""


class Collapse(PlanChange):
    """The server ignored the range of the first request: its body is the whole file."""

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
    stated: Stated | None = None  # what the server says of the file (every answer adds to it)


class StartOver(PlanChange):
    """416: the server says our range is unsatisfiable — start the file over."""


def request_part(
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
                raise StartOver()
            from .hubparts import hf_raise_for_status

            hf_raise_for_status(resp)
            if "Range" in req and resp.status_code != 200:
                bound = check_range(t, part, resp)  # a range for other bytes: not the file's size
            if t.stated is not None:
                t.stated.observe(resp)
            if "Range" in req and resp.status_code == 200:
                if probe or single:
                    handed = True
                    raise Collapse(resp)
                raise RangesUnreliable(
                    f"{t.name}: the server answered a range request with the whole file"
                )
            if "Range" not in req:
                bound = part.left if part.end >= 0 else body_length(resp)
            elif ok is not None:
                ok.set()
            read_body(t, partial, follower, part, resp, bound, single=single, halt=halt, tick=tick)
        finally:
            partial.reading(part, False)
            if not handed:
                closed(t, resp)
        if part.end >= 0 and part.left <= 0:
            return
        if halt is not None and halt.is_set():
            return
        if part.done == before:
            raise BodyEnded(f"{t.name}: the server sent no bytes at {part.pos}")
        if part.end < 0:
            return  # unknown size: the body was the file
        probe = False


def check_range(t: Transfer, part: Part, resp) -> int:
    """The number of bytes the answer to a range request holds, after checking that they are
    the bytes asked for (at the part's position, inside the part, of a file of our size)."""
    m = CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
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


def body_length(resp) -> int | None:
    """The length a plain (not compressed, not chunked) body announces, for a file of unknown
    size: the body ends there, and ending sooner is a dropped connection."""
    h = resp.headers
    if h.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
        return None
    if "chunked" in h.get("Transfer-Encoding", "").lower():
        return None
    length = h.get("Content-Length", "").strip()
    return int(length) if length.isdigit() else None


def closed(t: Transfer, resp) -> None:
    if t.active is not None:
        t.active.discard(resp)
    resp.close()


class Body:
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


def read_body(
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

    body = Body(resp)
    # no larger than the body can be (+1 to see a byte too many): a buffer's pages are touched
    # when it is made, ~2 ms for 4 MB, which a small file's whole download does not take
    view = memoryview(bytearray(BUFFER if bound is None else max(1, min(BUFFER, bound + 1))))
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
