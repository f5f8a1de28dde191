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

from pathlib import Path

from ..errors import RuntimeFailure
from .digest import Follower
from .parts import Partial, partial_path
from .ranged import fetch_parts
from .stated import Disagreement
from .transfer import (
    BodyEnded,
    Cancelled,
    Collapse,
    RangesUnreliable,
    StartOver,
    TooLarge,
    Transfer,
    body_length,
    closed,
    read_body,
    request_part,
)

__all__ = ["Cancelled", "TooLarge", "BodyEnded", "RangesUnreliable", "fetch", "abort"]
__all__ += ["partial_path", "Transfer"]


def fetch(t: Transfer) -> tuple[Path, str, str]:
    """Download `t.name` into its partial file; (partial path, sha256, git blob sha1 or "")."""
    learn(t)
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
    except (TooLarge, Disagreement):
        partial.discard()
        raise
    except RangesUnreliable:
        t.on_bytes(-partial.have())
        partial.discard()
        raise
    finally:
        hashing[0].discard()
        partial.close()


def learn(t: Transfer) -> None:
    """When the listing gave no size or no hash (a mirror's names-only listing), ask the server
    with one HEAD (its headers, not its redirect's target) before the first byte: a known size
    bounds every body and allows ranges; a stated hash is what the bytes are checked against.
    A server that answers no HEAD is no error (the GET's own headers are read too)."""
    s = t.stated
    if s is None or not s.wants_probe():
        return
    s.probed = True
    headers = dict(t.headers, **{"Accept-Encoding": "identity"})
    try:
        resp = t.session.head(t.url, headers=headers, allow_redirects=False, timeout=t.timeout_s)
    except Exception:  # noqa: BLE001 - the GET that follows reports the network's failures
        return
    try:
        if resp.status_code < 400:
            s.observe(resp)
    finally:
        resp.close()
    if t.size is None:
        t.size = s.size
    t.git_sha1 = t.git_sha1 or (bool(s.git_sha1) and t.size is not None)


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
                fetch_parts(t, partial, follower, todo)
            else:
                request_part(t, partial, follower, todo[0], single=True)
            return
        except Collapse as c:
            # Ranges ignored: this body is the whole file, on one connection.
            try:
                follower = over()
                whole = partial.parts[0]
                bound = whole.left if whole.end >= 0 else body_length(c.resp)
                read_body(t, partial, follower, whole, c.resp, bound, single=True)
            finally:
                closed(t, c.resp)
            return
        except StartOver:
            follower = over()
    raise RuntimeFailure(f"{t.name}: the server refused every range; try again later")


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
