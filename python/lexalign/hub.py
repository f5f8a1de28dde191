"""Downloads from the Hugging Face Hub with real huggingface_hub calls, plus what the library
does not do at the pinned version (0.36): bounded retries with backoff and jitter for transient
failures (connection drops, timeouts, 5xx, 429 + Retry-After), a timeout on the repo-info call,
an overall deadline, a per-repo completeness check (size, and sha256 or git blob id where the
Hub publishes one), and errors that tell missing / gated / forbidden apart. Files appear under
their final names only when complete (huggingface_hub's `.incomplete` + rename), and a later run
resumes partial files.

huggingface_hub retries some file requests on its own (up to 5 times, 1-8 s apart), but not the
API call, not mid-body drops and not 429. So that `retries`, `timeout_s` and `deadline_s` are the
one policy a user configures, its file-request retries are switched off (`_single_attempt`) and
every request goes through `Downloader._retrying`.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import DownloadConfig, RepoSpec
from .console import Console, human_bytes
from .errors import LexAlignError, RuntimeFailure, one_line, redact
from .manifest import ManifestFile, hash_file, read_manifest, verify_manifest, write_manifest

BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0


class DeadlineExceeded(RuntimeFailure):
    pass


class Transient(Exception):
    """Internal: a failure worth retrying; `retry_after` comes from the server when it says."""

    def __init__(self, cause: BaseException, retry_after: float | None = None) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.retry_after = retry_after


@dataclass
class RemoteFile:
    path: str
    size: int | None
    sha256: str | None  # LFS files: published sha256
    blob_id: str | None  # regular files: git blob sha1


@dataclass
class RepoResult:
    repo_id: str
    repo_type: str
    revision: str
    local_dir: Path
    commit: str = ""
    files: int = 0
    bytes: int = 0
    fetched_bytes: int = 0
    seconds: float = 0.0
    status: str = "pending"
    error: str = ""
    remote: list[RemoteFile] = field(default_factory=list)


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _retry_after(response: Any) -> float | None:
    try:
        value = response.headers.get("Retry-After")
    except AttributeError:
        return None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def classify(exc: BaseException) -> Transient | None:
    """A Transient when `exc` (or what caused it) is worth retrying; None when it is final."""
    import requests
    from huggingface_hub import errors as hf_errors

    final = (
        hf_errors.RepositoryNotFoundError,
        hf_errors.RevisionNotFoundError,
        hf_errors.EntryNotFoundError,
        hf_errors.GatedRepoError,
        hf_errors.DisabledRepoError,
        hf_errors.OfflineModeIsEnabled,
    )
    for e in _chain(exc):
        # "not in the local cache" wraps the real cause (a connection error, a 5xx on HEAD…)
        if isinstance(e, hf_errors.LocalEntryNotFoundError) and (e.__cause__ or e.__context__):
            continue
        if isinstance(e, final):
            return None
        response = getattr(e, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(e, requests.HTTPError) and status is not None:
            if status == 429 or status >= 500:
                return Transient(e, _retry_after(response))
            return None
        if isinstance(
            e,
            (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
            ),
        ):
            return Transient(e)
        if type(e).__module__.startswith("urllib3") and type(e).__name__ in (
            "ProtocolError",
            "ReadTimeoutError",
            "IncompleteRead",
            "NewConnectionError",
            "MaxRetryError",
        ):
            return Transient(e)
        if isinstance(e, (ConnectionError, TimeoutError)):
            return Transient(e)
        if isinstance(e, OSError) and "Consistency check failed" in str(e):
            return Transient(e)
    return None


def explain(
    exc: BaseException, repo_id: str, repo_type: str, revision: str, have_token: bool
) -> str:
    """One line for a final error: what went wrong and what to do."""
    from huggingface_hub import errors as hf_errors

    kind = "dataset" if repo_type == "dataset" else "model"
    for e in _chain(exc):
        if isinstance(e, hf_errors.LocalEntryNotFoundError) and (e.__cause__ or e.__context__):
            continue
        status = getattr(getattr(e, "response", None), "status_code", None)
        if isinstance(e, hf_errors.GatedRepoError):
            if status == 401 or not have_token:
                return (
                    f"{kind} repo {repo_id} is gated and no token was sent: set HF_TOKEN (or --token-file) "
                    "to a token of an account that accepted its licence"
                )
            return (
                f"{kind} repo {repo_id} is gated and your token has no access: accept the licence at "
                f"https://huggingface.co/{'datasets/' if repo_type == 'dataset' else ''}{repo_id} "
                "with the token's account"
            )
        if isinstance(e, hf_errors.RevisionNotFoundError):
            return f"revision {revision!r} not found in {kind} repo {repo_id}: use an existing branch, tag or commit"
        if isinstance(e, hf_errors.EntryNotFoundError):
            return f"a file listed by {kind} repo {repo_id}@{revision} is missing on the server: {one_line(e, 200)}"
        if isinstance(e, hf_errors.RepositoryNotFoundError):
            hint = "" if have_token else " (if it is private, set HF_TOKEN)"
            return f"{kind} repo {repo_id} not found: check repo_id and that it is a {kind}{hint}"
        if isinstance(e, hf_errors.DisabledRepoError):
            return f"{kind} repo {repo_id} is disabled on the Hub"
        if isinstance(e, hf_errors.OfflineModeIsEnabled):
            return f"{repo_id}: HF_HUB_OFFLINE is set and no complete local copy exists; run once online"
        if status == 401:
            return f"{repo_id}: the Hub rejected the token (401): check HF_TOKEN"
        if status == 403:
            return f"{repo_id}: the token has no permission for this repo (403): use a token with read access"
    return f"{repo_id}: {type(exc).__name__}: {one_line(exc, 300)}"


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def check(self, what: str) -> float:
        left = self.remaining()
        if left <= 0:
            raise DeadlineExceeded(
                f"deadline_s={self.seconds:g} exceeded while {what}; raise deadline_s or retry later"
            )
        return left


def backoff_delay(attempt: int, retry_after: float | None, rng: random.Random) -> float:
    """Exponential backoff with full jitter, or the server's Retry-After when it gives one."""
    if retry_after is not None:
        return min(retry_after, BACKOFF_MAX_S * 4)
    cap = min(BACKOFF_MAX_S, BACKOFF_BASE_S * (2**attempt))
    return cap / 2 + rng.uniform(0, cap / 2)


def _single_attempt() -> None:
    """Make huggingface_hub's file requests single attempts: our retry loop owns the policy."""
    import functools

    from huggingface_hub import file_download

    current = getattr(file_download, "http_backoff", None)
    if current is None or getattr(current, "_lexalign", False):
        return
    wrapped = functools.partial(current, max_retries=0)
    wrapped._lexalign = True  # type: ignore[attr-defined]
    file_download.http_backoff = wrapped


class Downloader:
    def __init__(
        self,
        cfg: DownloadConfig,
        console: Console,
        *,
        token: str | None,
        dry_run: bool = False,
        offline: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cfg = cfg
        self.console = console
        self.token = token
        self.dry_run = dry_run
        self.offline = offline
        self.sleep = sleep
        self.rng = random.Random()
        self.deadline = Deadline(cfg.deadline_s)
        _single_attempt()

    # -- retries -------------------------------------------------------------------------------

    def _retrying(self, what: str, fn: Callable[[float], Any], ctx: dict[str, str]) -> Any:
        attempts = self.cfg.retries + 1
        for attempt in range(attempts):
            left = self.deadline.check(what)
            timeout = max(1.0, min(self.cfg.timeout_s, left))
            try:
                return fn(timeout)
            except (KeyboardInterrupt, LexAlignError):
                raise
            except Exception as exc:  # noqa: BLE001 - classified below
                transient = classify(exc)
                if transient is None:
                    raise RuntimeFailure(
                        explain(
                            exc, ctx["repo_id"], ctx["repo_type"], ctx["revision"], bool(self.token)
                        )
                    ) from exc
                if attempt == attempts - 1:
                    raise RuntimeFailure(
                        f"{what}: gave up after {attempts} attempt(s): {type(transient.cause).__name__}: "
                        f"{one_line(transient.cause, 200)}"
                    ) from exc
                delay = backoff_delay(attempt, transient.retry_after, self.rng)
                left = self.deadline.remaining()
                if delay >= left:
                    raise DeadlineExceeded(
                        f"deadline_s={self.cfg.deadline_s:g} would be exceeded while {what} "
                        f"(next retry in {delay:.1f}s); raise deadline_s or retry later"
                    ) from exc
                self.console.warn(
                    f"{what}: {type(transient.cause).__name__}: {one_line(transient.cause, 160)}; "
                    f"retry {attempt + 1}/{attempts - 1} in {delay:.1f}s"
                )
                self.console.event(
                    "retry",
                    what=what,
                    attempt=attempt + 1,
                    delay_s=round(delay, 2),
                    error=redact(one_line(transient.cause, 200)),
                )
                self.sleep(delay)
        raise AssertionError("unreachable")

    # -- one repo ------------------------------------------------------------------------------

    def resolve(self, spec: RepoSpec, repo_type: str) -> tuple[str, list[RemoteFile]]:
        """Resolve the revision to a commit and list the files after the patterns."""
        from huggingface_hub import HfApi
        from huggingface_hub.utils import filter_repo_objects

        api = HfApi(token=self.token)
        revision = spec.revision or "main"
        ctx = {"repo_id": spec.repo_id, "repo_type": repo_type, "revision": revision}

        def call(timeout: float):
            return api.repo_info(
                spec.repo_id,
                revision=revision,
                repo_type=repo_type,
                files_metadata=True,
                timeout=timeout,
            )

        info = self._retrying(f"resolving {spec.repo_id}@{revision}", call, ctx)
        siblings = list(info.siblings or [])
        by_name = {s.rfilename: s for s in siblings}
        names = list(
            filter_repo_objects(
                [s.rfilename for s in siblings],
                allow_patterns=spec.allow_patterns,
                ignore_patterns=spec.ignore_patterns,
            )
        )
        files = []
        for name in sorted(names):
            s = by_name[name]
            lfs = getattr(s, "lfs", None)
            sha256 = getattr(lfs, "sha256", None) if lfs is not None else None
            if isinstance(lfs, dict):
                sha256 = lfs.get("sha256")
            files.append(
                RemoteFile(
                    path=name, size=s.size, sha256=sha256, blob_id=None if sha256 else s.blob_id
                )
            )
        if not info.sha:
            raise RuntimeFailure(
                f"{spec.repo_id}: the Hub did not return a commit for revision {revision!r}"
            )
        return info.sha, files

    def _fetch(
        self, spec: RepoSpec, repo_type: str, commit: str, f: RemoteFile, local_dir: Path
    ) -> None:
        from huggingface_hub import constants, hf_hub_download

        ctx = {"repo_id": spec.repo_id, "repo_type": repo_type, "revision": spec.revision or "main"}

        def call(timeout: float):
            constants.HF_HUB_DOWNLOAD_TIMEOUT = timeout
            return hf_hub_download(
                spec.repo_id,
                f.path,
                repo_type=repo_type,
                revision=commit,
                local_dir=str(local_dir),
                token=self.token,
                etag_timeout=timeout,
            )

        self._retrying(f"downloading {spec.repo_id}/{f.path}", call, ctx)

    def _check_file(
        self, local_dir: Path, f: RemoteFile, inline: tuple[str, str] | None = None
    ) -> tuple[str | None, str]:
        """(problem or None, sha256) for a downloaded file; `inline` is the hash taken while it
        downloaded, if any."""
        p = local_dir / f.path
        if not p.is_file():
            return f"{f.path}: missing after download", ""
        size = p.stat().st_size
        if f.size is not None and size != f.size:
            return f"{f.path}: size {size} != expected {f.size}", ""
        sha256, git_sha1 = inline or hash_file(p, git_sha1=bool(f.blob_id))
        if f.sha256 and sha256 != f.sha256:
            return f"{f.path}: sha256 mismatch", sha256
        if f.blob_id and len(f.blob_id) == 40 and git_sha1 != f.blob_id:
            return f"{f.path}: git blob id mismatch", sha256
        return None, sha256

    def download_repo(
        self, spec: RepoSpec, repo_type: str, local_dir: Path, result: RepoResult
    ) -> None:
        started = time.monotonic()
        revision = spec.revision or "main"
        if self.offline:
            self._offline_repo(spec, local_dir, result)
            return
        commit, files = self.resolve(spec, repo_type)
        result.commit, result.remote = commit, files
        result.files = len(files)
        result.bytes = sum(f.size or 0 for f in files)
        self.console.event(
            "repo_start",
            repo_id=spec.repo_id,
            repo_type=repo_type,
            revision=revision,
            commit=commit,
            files=len(files),
            bytes=result.bytes,
        )
        if self.dry_run:
            result.status = "dry-run"
            return
        previous = read_manifest(local_dir)
        known = {}
        if previous and previous.get("commit") == commit:
            known = {e["path"]: e for e in previous.get("files", [])}
        local_dir.mkdir(parents=True, exist_ok=True)
        manifest_files: list[ManifestFile] = []
        for f in files:
            p = local_dir / f.path
            entry = known.get(f.path)
            if (
                entry
                and p.is_file()
                and p.stat().st_size
                == entry["size"]
                == (f.size if f.size is not None else entry["size"])
            ):
                manifest_files.append(ManifestFile(f.path, entry["size"], entry["sha256"]))
                self.console.event(
                    "file_done", repo_id=spec.repo_id, path=f.path, bytes=entry["size"], cached=True
                )
                continue
            sha256 = self._fetch_verified(spec, repo_type, commit, f, local_dir)
            size = p.stat().st_size
            result.fetched_bytes += size
            manifest_files.append(ManifestFile(f.path, size, sha256))
        write_manifest(
            local_dir,
            repo_id=spec.repo_id,
            repo_type=repo_type,
            revision=revision,
            commit=commit,
            files=manifest_files,
            patterns={
                "allow_patterns": spec.allow_patterns,
                "ignore_patterns": spec.ignore_patterns,
            },
        )
        result.seconds = time.monotonic() - started
        result.status = "ok"

    def _fetch_verified(
        self, spec: RepoSpec, repo_type: str, commit: str, f: RemoteFile, local_dir: Path
    ) -> str:
        """Download one file (resuming), check it, and retry a corrupt copy within the budget."""
        for _attempt in range(self.cfg.retries + 1):
            watch = local_dir / ".cache" / "huggingface" / "download" / Path(f.path).parent
            hasher = _InlineHasher(watch, local_dir / f.path, f.size, git_sha1=bool(f.blob_id))
            with _Progress(self.console, spec.repo_id, f, local_dir), hasher:
                self._fetch(spec, repo_type, commit, f, local_dir)
            problem, sha256 = self._check_file(local_dir, f, hasher.result())
            if problem is None:
                self.console.event(
                    "file_done", repo_id=spec.repo_id, path=f.path, bytes=f.size, cached=False
                )
                if not self.console.human or not _Progress.live():
                    self.console.info(f"  {spec.repo_id}: {f.path} ({human_bytes(f.size or 0)})")
                return sha256
            # A corrupt copy is removed so the next attempt fetches it afresh.
            (local_dir / f.path).unlink(missing_ok=True)
            self.console.warn(f"{spec.repo_id}: {problem}; fetching it again")
            self.deadline.check(f"re-downloading {f.path}")
        raise RuntimeFailure(
            f"{spec.repo_id}: {f.path} failed its integrity check {self.cfg.retries + 1} times; the server sends a corrupt file"
        )

    def _offline_repo(self, spec: RepoSpec, local_dir: Path, result: RepoResult) -> None:
        data = read_manifest(local_dir)
        revision = spec.revision or "main"
        if data is None:
            raise RuntimeFailure(
                f"{spec.repo_id}: HF_HUB_OFFLINE is set and {local_dir} has no lexalign-manifest.json; run once online"
            )
        if data.get("revision") != revision and not data.get("commit", "").startswith(revision):
            raise RuntimeFailure(
                f"{spec.repo_id}: offline, and the local copy is of revision {data.get('revision')!r}, not {revision!r}"
            )
        result.commit = data["commit"]
        result.files = len(data["files"])
        result.bytes = sum(e["size"] for e in data["files"])
        result.remote = [RemoteFile(e["path"], e["size"], e["sha256"], None) for e in data["files"]]
        if self.dry_run:
            result.status = "dry-run (offline)"
            return
        missing = [
            e["path"]
            for e in data["files"]
            if not (local_dir / e["path"]).is_file()
            or (local_dir / e["path"]).stat().st_size != e["size"]
        ]
        if missing:
            raise RuntimeFailure(
                f"{spec.repo_id}: offline and {len(missing)} file(s) are missing or truncated, e.g. {missing[0]}"
            )
        result.status = "ok (offline)"

    # -- the run -------------------------------------------------------------------------------

    def jobs(self) -> list[tuple[RepoSpec, str, Path]]:
        out = []
        for kind, specs in (("models", self.cfg.models), ("datasets", self.cfg.datasets)):
            repo_type = "model" if kind == "models" else "dataset"
            for spec in specs:
                out.append((spec, repo_type, Path(self.cfg.local_dir_for(spec, kind))))
        return out

    def run(self) -> list[RepoResult]:
        results = []
        jobs = self.jobs()
        self.console.event("start", repos=len(jobs), dry_run=self.dry_run, offline=self.offline)
        for spec, repo_type, local_dir in jobs:
            result = RepoResult(spec.repo_id, repo_type, spec.revision or "main", local_dir)
            started = time.monotonic()
            try:
                self.download_repo(spec, repo_type, local_dir, result)
            except DeadlineExceeded as exc:
                result.status, result.error = "failed", str(exc)
                self.console.error(str(exc), repo_id=spec.repo_id)
                results.append(result)
                # Nothing else can finish either.
                for spec2, rt2, ld2 in jobs[len(results) :]:
                    results.append(
                        RepoResult(
                            spec2.repo_id,
                            rt2,
                            spec2.revision or "main",
                            ld2,
                            status="skipped",
                            error="deadline exceeded",
                        )
                    )
                break
            except LexAlignError as exc:
                result.status, result.error = "failed", str(exc)
                self.console.error(str(exc), repo_id=spec.repo_id)
            result.seconds = time.monotonic() - started
            self.console.event(
                "repo_done",
                repo_id=spec.repo_id,
                repo_type=repo_type,
                status=result.status,
                commit=result.commit,
                files=result.files,
                bytes=result.bytes,
                seconds=round(result.seconds, 3),
                local_dir=str(local_dir),
                error=result.error or None,
            )
            results.append(result)
        return results


class _InlineHasher:
    """Hashes a file while huggingface_hub writes it (its `.incomplete` file, then the renamed
    final file), so the integrity check needs no second pass when the network is the bottleneck.
    `finish()` returns None when it could not follow the file; the caller then hashes it whole."""

    def __init__(self, watch_dir: Path, final: Path, size: int | None, git_sha1: bool) -> None:
        import hashlib

        self.watch_dir, self.final = watch_dir, final
        self.sha256 = hashlib.sha256()
        self.git = hashlib.sha1(b"blob %d\0" % size) if git_sha1 and size is not None else None
        self.offset = 0
        self.path: Path | None = None
        self.valid = True
        self.started = time.time()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _pick(self) -> Path | None:
        try:
            entries = [e for e in os.scandir(self.watch_dir) if e.name.endswith(".incomplete")]
            fresh = [e for e in entries if e.stat().st_mtime >= self.started - 1]
        except OSError:
            return None
        if not fresh:
            return None
        return Path(max(fresh, key=lambda e: e.stat().st_mtime).path)

    def _consume(self, path: Path) -> None:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < self.offset:  # rewritten from the start: the running hash is useless
                self.valid = False
                return
            fh.seek(self.offset)
            while self.offset < size:
                chunk = fh.read(min(8 << 20, size - self.offset))
                if not chunk:
                    break
                self.sha256.update(chunk)
                if self.git is not None:
                    self.git.update(chunk)
                self.offset += len(chunk)

    def _loop(self) -> None:
        while not self.stop.wait(0.05) and self.valid:
            if self.path is None:
                self.path = self._pick()
            if self.path is not None:
                try:
                    self._consume(self.path)
                except OSError:
                    pass  # renamed to its final name: finish() takes over

    def __enter__(self) -> _InlineHasher:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()

    def result(self) -> tuple[str, str] | None:
        """(sha256, git sha1 or "") of the final file, or None."""
        if not self.valid or self.path is None:
            return None
        try:
            self._consume(self.final)
            if not self.valid or self.offset != self.final.stat().st_size:
                return None
        except OSError:
            return None
        return self.sha256.hexdigest(), self.git.hexdigest() if self.git is not None else ""


class _Progress:
    """Shows a file's progress by watching its `.incomplete` file (huggingface_hub's own bars are
    off). Human mode: a rich bar when stderr is a terminal. JSON mode: `file_progress` events."""

    _live = False

    @classmethod
    def live(cls) -> bool:
        return cls._live

    def __init__(self, console: Console, repo_id: str, f: RemoteFile, local_dir: Path) -> None:
        self.console, self.repo_id, self.f = console, repo_id, f
        rel_parent = Path(f.path).parent
        self.watch_dir = local_dir / ".cache" / "huggingface" / "download" / rel_parent
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.bar = None

    def _current(self) -> int:
        best = 0
        try:
            for entry in os.scandir(self.watch_dir):
                if entry.name.endswith(".incomplete"):
                    best = max(best, entry.stat().st_size)
        except OSError:
            pass
        return best

    def _loop(self) -> None:
        last = -1
        while not self.stop.wait(0.25):
            now = self._current()
            if now != last:
                last = now
                if self.bar is not None:
                    self.bar[0].update(self.bar[1], completed=now)
                self.console.event(
                    "file_progress",
                    repo_id=self.repo_id,
                    path=self.f.path,
                    bytes=now,
                    total=self.f.size,
                )

    def __enter__(self) -> _Progress:
        import sys

        if self.console.human and sys.stderr.isatty():
            from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

            progress = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=self.console.rich,
                transient=True,
            )
            task = progress.add_task(f"{self.repo_id}: {self.f.path}", total=self.f.size)
            progress.start()
            self.bar = (progress, task)
            _Progress._live = True
        if self.bar is not None or self.console.mode == "json":
            self.thread = threading.Thread(target=self._loop, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=1)
        if self.bar is not None:
            self.bar[0].stop()
            if exc[0] is None:
                self.console.info(
                    f"  {self.repo_id}: {self.f.path} ({human_bytes(self.f.size or 0)})"
                )


def verify(cfg: DownloadConfig, console: Console) -> int:
    """Re-hash every configured repo's files against its manifest (offline). Returns problems."""
    problems = 0
    rows = []
    for kind, specs in (("models", cfg.models), ("datasets", cfg.datasets)):
        for spec in specs:
            local_dir = Path(cfg.local_dir_for(spec, kind))
            found = verify_manifest(local_dir)
            data = read_manifest(local_dir)
            n = len(data["files"]) if data else 0
            rows.append(
                [spec.repo_id, str(local_dir), n, "ok" if not found else f"{len(found)} problem(s)"]
            )
            for p in found:
                console.error(f"verify: {p}", repo_id=spec.repo_id)
            console.event(
                "verify", repo_id=spec.repo_id, local_dir=str(local_dir), files=n, problems=found
            )
            problems += len(found)
    console.table("verify", ["repo", "local_dir", "files", "status"], rows)
    return problems
