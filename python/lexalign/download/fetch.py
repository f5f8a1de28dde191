"""One file over HTTP, bounded: the Hub's `resolve/` URL for a resolved commit, fetched with
huggingface_hub's session (its headers, proxies and CA settings) but read by us, so that

- a transfer is cut at the run's deadline (checked on every read, and no single read waits
  longer than `timeout_s` or the time left), whatever the server does: stalls, drips, bodies
  that never end;
- no more than the announced size is accepted: a longer body is an error and its partial file
  is removed;
- partial files resume with a Range request; one at least as large as the file is discarded
  first, and a 416 answer restarts from zero;
- the sha256 (and git blob id) is computed while the bytes arrive, so checking needs no second
  read;
- the partial file lives under `local_dir/.cache/lexalign/` and becomes the real file only by
  rename, after the caller checked it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path

from ..errors import RuntimeFailure
from .deadline import Deadline, DeadlineExceeded

READ = 1 << 20


class Cancelled(Exception):
    """Ctrl-C in the main thread: stop this transfer, keep the partial file for a resume."""


class TooLarge(RuntimeFailure):
    """The server sent more bytes than the file has."""


class BodyEnded(ConnectionResetError):
    """The body ended early: transient (the retry resumes where it stopped)."""


def partial_path(local_dir: Path, name: str) -> Path:
    key = hashlib.sha256(name.encode()).hexdigest()[:32]
    return Path(local_dir) / ".cache" / "lexalign" / f"{key}.incomplete"


class Hasher:
    """sha256 (and the git blob sha1) of a stream, computed on a thread of its own: hashlib
    releases the GIL, so hashing overlaps with receiving and writing (on a fast link the hash
    would otherwise halve the throughput)."""

    def __init__(self, size: int | None, git_sha1: bool) -> None:
        import queue

        self.sha = hashlib.sha256()
        self.git = hashlib.sha1(b"blob %d\0" % size) if git_sha1 and size is not None else None
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=64)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (chunk := self.queue.get()) is not None:
            self.sha.update(chunk)
            if self.git is not None:
                self.git.update(chunk)

    def update(self, chunk: bytes) -> None:
        self.queue.put(chunk)

    def digests(self) -> tuple[str, str]:
        self.discard()
        return self.sha.hexdigest(), self.git.hexdigest() if self.git is not None else ""

    def discard(self) -> None:
        """Stop the thread (idempotent; after digests() it is already stopped)."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()


def fetch(
    *,
    session,
    url: str,
    headers: dict[str, str],
    local_dir: Path,
    name: str,
    size: int | None,
    git_sha1: bool,
    deadline: Deadline,
    timeout_s: float,
    stop: threading.Event,
    on_bytes: Callable[[int], None] = lambda n: None,
    active: set | None = None,
) -> tuple[Path, str, str]:
    """Download `name` into its partial file; (partial path, sha256, git blob sha1 or "")."""

    part = partial_path(local_dir, name)
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.is_file() else 0
    if size is not None and have >= size:
        part.unlink()  # as large as the file or larger: not a prefix we can trust
        have = 0
    hashers = [Hasher(size, git_sha1)]  # the current one last (a restart makes a new one)
    try:
        return _transfer(
            session, url, headers, part, name, size, have, hashers, deadline, timeout_s, stop,
            on_bytes, active, git_sha1,
        )  # fmt: skip
    finally:
        for h in hashers:
            h.discard()


def _transfer(
    session,
    url,
    headers,
    part,
    name,
    size,
    have,
    hashers,
    deadline,
    timeout_s,
    stop,
    on_bytes,
    active,
    git_sha1,
) -> tuple[Path, str, str]:
    from huggingface_hub.utils import hf_raise_for_status

    hasher = hashers[-1]
    if have:
        with part.open("rb") as f:
            while chunk := f.read(8 << 20):
                hasher.update(chunk)
        on_bytes(have)
    for _restart in range(2):
        left = deadline.check(f"downloading {name}")
        wait = max(1.0, min(timeout_s, left))
        req = dict(headers)
        if have:
            req["Range"] = f"bytes={have}-"
        resp = session.get(url, headers=req, stream=True, timeout=(wait, wait))
        if active is not None:
            active.add(resp)
        try:
            if resp.status_code == 416 and have:
                # The server says the range is unsatisfiable: start the file over.
                part.unlink(missing_ok=True)
                on_bytes(-have)
                have = 0
                hasher = Hasher(size, git_sha1)
                hashers.append(hasher)
                continue
            hf_raise_for_status(resp)
            if have and resp.status_code == 200:
                # Range ignored: the body is the whole file again.
                on_bytes(-have)
                have = 0
                hasher = Hasher(size, git_sha1)
                hashers.append(hasher)
            with part.open("ab" if have else "wb") as out:
                raw = resp.raw
                while True:
                    if stop.is_set():
                        raise Cancelled(name)
                    if deadline.remaining() <= 0:
                        raise DeadlineExceeded(
                            f"deadline_s={deadline.seconds:g} exceeded while downloading {name} "
                            f"({have} of {size if size is not None else '?'} bytes kept; run again to resume, or raise deadline_s)"
                        )
                    chunk = raw.read1(READ, decode_content=True)
                    if not chunk:
                        break
                    if size is not None and have + len(chunk) > size:
                        out.close()
                        part.unlink(missing_ok=True)
                        raise TooLarge(
                            f"{name}: the server sent more than the {size} bytes it announced; "
                            "stopped reading and removed the partial file (a broken mirror? check HF_ENDPOINT)"
                        )
                    out.write(chunk)
                    have += len(chunk)
                    hasher.update(chunk)
                    on_bytes(len(chunk))
        finally:
            if active is not None:
                active.discard(resp)
            resp.close()
        break
    if size is not None and have < size:
        raise BodyEnded(f"{name}: the body ended after {have} of {size} bytes")
    sha256, git = hasher.digests()
    return part, sha256, git


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
