"""A local imitation of the Hugging Face Hub for tests and benchmarks (standard library only).

It serves what huggingface_hub 0.36 asks for: the repo-info API
(`/api/{models,datasets}/<repo>/revision/<rev>`), HEAD and GET on `resolve/` with Range
requests and the Hub's headers (`X-Repo-Commit`, `ETag`, `X-Linked-Etag`, `X-Linked-Size`), and
`X-Error-Code` for missing repos, revisions, files and gated repos. Faults can be switched on per
request: a status code (with Retry-After), a connection closed mid-body, a stall, a slow API call.

Run it by hand:  python tests/hubsim.py --serve DIR --repo-id org/name   (prints the URL)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

LFS_MIN_SIZE = 1024  # files at least this big are served as LFS files (sha256 published)


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class SimRepo:
    repo_id: str
    repo_type: str = "model"
    files: dict[str, bytes | Path] = field(default_factory=dict)
    revisions: dict[str, str] = field(default_factory=dict)  # name -> commit
    gated: bool = False
    allowed_tokens: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not self.revisions:
            seed = f"{self.repo_type}/{self.repo_id}/{sorted(self.files)}".encode()
            self.revisions = {"main": hashlib.sha1(seed).hexdigest()}

    def data(self, path: str) -> bytes:
        v = self.files[path]
        return v.read_bytes() if isinstance(v, Path) else v

    def size(self, path: str) -> int:
        v = self.files[path]
        return v.stat().st_size if isinstance(v, Path) else len(v)

    def is_lfs(self, path: str) -> bool:
        return self.size(path) >= LFS_MIN_SIZE or path.endswith(
            (".safetensors", ".bin", ".parquet")
        )

    def commit_for(self, rev: str) -> str | None:
        if rev in self.revisions:
            return self.revisions[rev]
        if rev in self.revisions.values():
            return rev
        return None


@dataclass
class Fault:
    """One switchable fault. `where`: api | head | get. `path`: substring the URL must contain.
    `kind`: status | drop | stall | slow, and the hostile ones: `endless` (a body with no
    length that never ends), `drip` (one byte every `seconds`, forever), `echo` (an error whose
    message repeats the Authorization header back), and for range requests `garble` (other
    bytes of the right length), `misrange` (a Content-Range for other bytes than asked),
    `overlong` (the range, then more bytes without end, no Content-Length). `times`: how many
    requests it hits. `ranged`: only range requests (True), only full ones (False), or both;
    `range_start`: only the range request that starts at this byte."""

    where: str
    kind: str
    path: str = ""
    times: int = 1
    status: int = 500
    retry_after: float | None = None
    after_bytes: int = 0
    seconds: float = 0.0
    ranged: bool | None = None
    range_start: int | None = None


class HubSim:
    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], SimRepo] = {}
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()
        self._sha_cache: dict[tuple[str, str, str], tuple[str, str]] = {}
        self.server: ThreadingHTTPServer | None = None
        self.rate_bytes_per_s: float | None = None  # emulate a link of this speed (file bodies)
        self.ranges = True  # False: Range headers are ignored (200, no Accept-Ranges)
        self.range_cap: int | None = None  # answer a range with at most this many bytes
        # the poorer answers some mirrors and proxies give:
        self.listing = "full"  # "names": repo info lists file names only (no size, no hashes)
        self.hash_headers = True  # False: no ETag / X-Linked-Etag / X-Linked-Size on resolve
        self.chunked = False  # True: whole-file bodies go chunked, without Content-Length
        self.header_overrides: dict[str, dict[str, str]] = {}  # file name -> headers to lie with
        self.streaming = 0  # file bodies being sent right now
        self.served = 0  # file body bytes sent
        self.max_streaming = 0  # the most at once
        self._open: set[socket.socket] = set()  # the connections being served

    # -- setup ---------------------------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        files: dict[str, bytes | Path],
        *,
        repo_type: str = "model",
        revisions: dict[str, str] | None = None,
        gated: bool = False,
        allowed_tokens: set[str] | None = None,
    ) -> SimRepo:
        repo = SimRepo(
            repo_id, repo_type, dict(files), dict(revisions or {}), gated, set(allowed_tokens or ())
        )
        self.repos[(repo_type, repo_id)] = repo
        return repo

    def add_fault(self, **kw: Any) -> Fault:
        f = Fault(**kw)
        with self.lock:
            self.faults.append(f)
        return f

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def requests(
        self, method: str | None = None, contains: str = ""
    ) -> list[tuple[str, str, str | None]]:
        with self.lock:
            return [r for r in self.log if (method is None or r[0] == method) and contains in r[1]]

    def start(self) -> str:
        handler = _make_handler(self)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.url

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        """Stop listening and hang up on every open connection: a client's pooled keep-alive
        connection must not reach a stopped imitation's handler (with its old repos and faults)
        in a later test, when the kernel gives a new imitation the same port."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        with self.lock:
            open_now, self._open = list(self._open), set()
        for conn in open_now:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # -- internals -----------------------------------------------------------------------------

    def take_fault(self, where: str, path: str, rng: str | None = None) -> Fault | None:
        start = None
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0] or 0)
        with self.lock:
            for f in self.faults:
                if not (f.where == where and f.times > 0 and f.path in path):
                    continue
                if f.ranged is not None and f.ranged != (start is not None):
                    continue
                if f.range_start is not None and f.range_start != start:
                    continue
                f.times -= 1
                return f
        return None

    def hashes(self, repo: SimRepo, path: str) -> tuple[str, str]:
        key = (repo.repo_type, repo.repo_id, path)
        if key not in self._sha_cache:
            data = repo.data(path)
            self._sha_cache[key] = (hashlib.sha256(data).hexdigest(), git_blob_sha1(data))
        return self._sha_cache[key]


def _make_handler(sim: HubSim):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:  # quiet
            pass

        def setup(self) -> None:
            super().setup()
            with sim.lock:
                sim._open.add(self.connection)

        def finish(self) -> None:
            with sim.lock:
                sim._open.discard(self.connection)
            super().finish()

        # -- helpers ---------------------------------------------------------------------------

        def _send(
            self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str | None, message: str) -> None:
            headers = {"Content-Type": "application/json"}
            if code:
                headers["X-Error-Code"] = code
            headers["X-Error-Message"] = message
            self._send(status, json.dumps({"error": message}).encode(), headers)

        def _token(self) -> str | None:
            auth = self.headers.get("Authorization", "")
            return auth[7:] if auth.startswith("Bearer ") else None

        def _authorized(self, repo: SimRepo) -> bool:
            if not repo.gated:
                return True
            token = self._token()
            if token is None:
                self._error(
                    401,
                    "GatedRepo",
                    "Access to this repo is restricted; you must be authenticated.",
                )
                return False
            if token not in repo.allowed_tokens:
                self._error(
                    403,
                    "GatedRepo",
                    "Access to this repo is restricted; accept the conditions first.",
                )
                return False
            return True

        def _apply_fault(self, where: str) -> bool:
            """True when a fault answered the request (nothing more to do)."""
            rng = self.headers.get("Range") if sim.ranges else None
            f = sim.take_fault(where, self.path, rng)
            if f is None:
                return False
            if f.kind == "slow":
                time.sleep(f.seconds)
                return False
            if f.kind == "status":
                headers = {
                    "Content-Type": "application/json",
                    "X-Error-Message": f"injected {f.status}",
                }
                if f.retry_after is not None:
                    headers["Retry-After"] = f"{f.retry_after:g}"
                self._send(
                    f.status, json.dumps({"error": f"injected {f.status}"}).encode(), headers
                )
                return True
            if f.kind == "echo":
                auth = self.headers.get("Authorization", "")
                self._error(f.status, None, f"rejected credentials {auth!s} for {self.path}")
                return True
            if f.kind in ("endless", "drip") and where == "get":
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                block = b"x" * (1 if f.kind == "drip" else 64 * 1024)
                try:
                    while True:
                        self.wfile.write(block)
                        self.wfile.flush()
                        if f.kind == "drip":
                            time.sleep(f.seconds)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass
                return True
            if f.kind == "drop" and where == "api":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return True
            self._pending_fault = f
            return False

        # -- routing ---------------------------------------------------------------------------

        def do_GET(self) -> None:
            self._route()

        def do_HEAD(self) -> None:
            self._route()

        def _route(self) -> None:
            self._pending_fault = None
            self._chunked = False
            path = unquote(urlsplit(self.path).path)
            with sim.lock:
                sim.log.append((self.command, path, self.headers.get("Range")))
            try:
                if path.startswith("/api/"):
                    self._api(path)
                elif "/resolve/" in path:
                    self._resolve(path)
                else:
                    self._error(404, None, "not found")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _api(self, path: str) -> None:
            if self._apply_fault("api"):
                return
            parts = path.split("/")[2:]  # [models|datasets, owner, name, revision, rev]
            if not parts or parts[0] not in ("models", "datasets"):
                self._error(404, None, "unknown API")
                return
            repo_type = "model" if parts[0] == "models" else "dataset"
            rest = parts[1:]
            rev = "main"
            if "tree" in rest:
                self._tree(repo_type, rest)
                return
            if "revision" in rest:
                i = rest.index("revision")
                rev = "/".join(rest[i + 1 :])
                rest = rest[:i]
            repo = sim.repos.get((repo_type, "/".join(rest)))
            if repo is None:
                self._error(404 if self._token() else 401, "RepoNotFound", "Repository not found")
                return
            if not self._authorized(repo):
                return
            commit = repo.commit_for(rev)
            if commit is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
                return
            siblings = []
            for name in sorted(repo.files):
                sha256, blob = sim.hashes(repo, name)
                entry: dict[str, Any] = {"rfilename": name, "size": repo.size(name), "blobId": blob}
                if repo.is_lfs(name):
                    entry["lfs"] = {"sha256": sha256, "size": repo.size(name), "pointerSize": 134}
                if sim.listing == "names":
                    entry = {"rfilename": name}
                siblings.append(entry)
            body = {
                "_id": commit[:24],
                "id": repo.repo_id,
                "sha": commit,
                "private": False,
                "gated": "manual" if repo.gated else False,
                "disabled": False,
                "lastModified": "2026-01-01T00:00:00.000Z",
                "tags": [],
                "downloads": 0,
                "likes": 0,
                "siblings": siblings,
            }
            self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

        def _tree(self, repo_type: str, rest: list[str]) -> None:
            """`/api/{models,datasets}/<repo>/tree/<rev>/<path>?recursive=…` (the datasets library
            lists a dataset's files with it)."""
            i = rest.index("tree")
            repo = sim.repos.get((repo_type, "/".join(rest[:i])))
            if repo is None:
                self._error(404 if self._token() else 401, "RepoNotFound", "Repository not found")
                return
            if not self._authorized(repo):
                return
            rev, prefix = rest[i + 1], "/".join(rest[i + 2 :]).strip("/")
            if repo.commit_for(rev) is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
                return
            recursive = "recursive=true" in urlsplit(self.path).query.lower()
            base = f"{prefix}/" if prefix else ""
            entries: dict[str, dict[str, Any]] = {}
            for name in sorted(repo.files):
                if not name.startswith(base):
                    continue
                rel = name[len(base) :]
                parts = rel.split("/")
                dirs = parts[:-1] if recursive else parts[:1] if len(parts) > 1 else []
                for k in range(len(dirs)):
                    d = base + "/".join(parts[: k + 1])
                    entries.setdefault(
                        d, {"type": "directory", "oid": "0" * 40, "size": 0, "path": d}
                    )
                if recursive or len(parts) == 1:
                    sha256, blob = sim.hashes(repo, name)
                    entry: dict[str, Any] = {
                        "type": "file",
                        "oid": blob,
                        "size": repo.size(name),
                        "path": name,
                    }
                    if repo.is_lfs(name):
                        entry["lfs"] = {"oid": sha256, "size": repo.size(name), "pointerSize": 134}
                    entries[name] = entry
            if not entries and prefix and prefix not in repo.files:
                self._error(404, "EntryNotFound", f"{prefix} does not exist")
                return
            self._send(
                200,
                json.dumps(list(entries.values())).encode(),
                {"Content-Type": "application/json"},
            )

        def _resolve(self, path: str) -> None:
            where = "head" if self.command == "HEAD" else "get"
            if self._apply_fault(where):
                return
            parts = path.strip("/").split("/")
            repo_type = "model"
            if parts[0] == "datasets":
                repo_type, parts = "dataset", parts[1:]
            i = parts.index("resolve")
            repo_id, rev, filename = "/".join(parts[:i]), parts[i + 1], "/".join(parts[i + 2 :])
            repo = sim.repos.get((repo_type, repo_id))
            if repo is None:
                self._error(404 if self._token() else 401, "RepoNotFound", "Repository not found")
                return
            if not self._authorized(repo):
                return
            commit = repo.commit_for(rev)
            if commit is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
                return
            if filename not in repo.files:
                self._error(404, "EntryNotFound", f"{filename} does not exist")
                return
            size = repo.size(filename)
            sha256, blob = sim.hashes(repo, filename)
            headers = {"X-Repo-Commit": commit, "Content-Type": "application/octet-stream"}
            if sim.ranges:
                headers["Accept-Ranges"] = "bytes"
            if not sim.hash_headers:
                pass
            elif repo.is_lfs(filename):
                headers["ETag"] = f'"{sha256}"'
                headers["X-Linked-Etag"] = f'"{sha256}"'
                headers["X-Linked-Size"] = str(size)
            else:
                headers["ETag"] = f'"{blob}"'
            lies = dict(sim.header_overrides.get(filename, {}))
            told = lies.pop("Content-Length", None)  # a proxy that cut the body and says so
            headers.update(lies)
            start = 0
            status = 200
            rng = self.headers.get("Range") if sim.ranges else None
            fault = self._pending_fault
            if rng and rng.startswith("bytes=") and self.command == "GET":
                spec = rng[6:].split(",")[0]
                first, _, last = spec.partition("-")
                start = int(first or 0)
                end = int(last) if last else size - 1
                if start >= size:
                    self._send(416, b"", {"Content-Range": f"bytes */{size}"})
                    return
                end = min(end, size - 1)
                if sim.range_cap:
                    end = min(end, start + sim.range_cap - 1)
                status = 206
                claimed = start + 4096 if fault is not None and fault.kind == "misrange" else start
                headers["Content-Range"] = f"bytes {claimed}-{end}/{size}"
                length = end - start + 1
            else:
                length = size if told is None else int(told)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            chunked = sim.chunked and status == 200 and self.command == "GET"
            if fault is not None and fault.kind == "overlong":
                self.send_header("Connection", "close")
                self.close_connection = True
            elif chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(length))
            self.end_headers()
            if self.command == "HEAD":
                return
            self._chunked = chunked
            self._stream(repo, filename, start, length)
            if chunked and not self.close_connection:
                self.wfile.write(b"0\r\n\r\n")

        def _body(self, data: bytes, frame: int | None = None) -> None:
            """Send body bytes; chunked bodies frame them (a chunk announced as `frame` bytes,
            of which `data` may be only the first part: a cut mid-chunk)."""
            if not self._chunked:
                self.wfile.write(data)
                return
            self.wfile.write(b"%x\r\n" % (frame if frame is not None else len(data)) + data)
            if frame is None or frame == len(data):
                self.wfile.write(b"\r\n")

        def _stream(self, repo: SimRepo, filename: str, start: int, length: int) -> None:
            fault = self._pending_fault
            src = repo.files[filename]
            sent = 0
            rate = sim.rate_bytes_per_s
            chunk = 1 << 20 if not rate else max(16 << 10, min(1 << 20, int(rate / 20)))
            handle = open(src, "rb") if isinstance(src, Path) else None
            started = time.monotonic()
            with sim.lock:
                sim.streaming += 1
                sim.max_streaming = max(sim.max_streaming, sim.streaming)
            try:
                if handle is not None:
                    handle.seek(start)
                while sent < length:
                    n = min(chunk, length - sent)
                    cut = fault is not None and fault.kind in ("drop", "stall")
                    if cut and sent + n > fault.after_bytes >= sent:
                        frame, n = n, fault.after_bytes - sent
                        if n > 0:
                            self._body(self._read(handle, src, start + sent, n), frame)
                            sent += n
                            with sim.lock:
                                sim.served += n
                        self.wfile.flush()
                        if fault.kind == "stall":
                            time.sleep(fault.seconds)
                        self.close_connection = True
                        try:
                            self.connection.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                        return
                    if rate:  # the chunk leaves when the link would have carried it
                        ahead = (sent + n) / rate - (time.monotonic() - started)
                        if ahead > 0:
                            time.sleep(ahead)
                    data = self._read(handle, src, start + sent, n)
                    if fault is not None and fault.kind == "garble":
                        data = data[::-1]
                    self._body(data)
                    sent += n
                    with sim.lock:
                        sim.served += n
                if fault is not None and fault.kind == "overlong":
                    while True:  # until the client hangs up
                        self.wfile.write(b"\x00" * (64 << 10))
            finally:
                with sim.lock:
                    sim.streaming -= 1
                if handle is not None:
                    handle.close()

        @staticmethod
        def _read(handle: Any, src: bytes | Path, offset: int, n: int) -> bytes:
            if handle is not None:
                return handle.read(n)
            assert isinstance(src, bytes)
            return src[offset : offset + n]

    return Handler


def main() -> None:
    ap = argparse.ArgumentParser(description="Serve a folder as one Hub repo on 127.0.0.1")
    ap.add_argument("--serve", required=True, help="folder whose files become the repo")
    ap.add_argument("--repo-id", default="lexalign/bench")
    ap.add_argument("--repo-type", default="model", choices=["model", "dataset"])
    ap.add_argument("--url-file", help="write the URL here once serving")
    args = ap.parse_args()
    root = Path(args.serve)
    files = {
        str(p.relative_to(root)).replace(os.sep, "/"): p
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
    sim = HubSim()
    sim.add_repo(args.repo_id, files, repo_type=args.repo_type)
    url = sim.start()
    if args.url_file:
        Path(args.url_file).write_text(url)
    print(url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sim.stop()


if __name__ == "__main__":
    main()
