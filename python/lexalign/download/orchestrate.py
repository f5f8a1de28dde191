"""The download run: resolve each repo's revision to a commit and list its files (names checked:
names.py), fetch the files that are missing or differ — in parallel, `max_workers` transfers
across all repos, each bounded (fetch.py) and resumable — check each (size, and sha256 or git
blob id where the Hub publishes one), move it into place, and write the manifest; within the
retry policy (retry.py) and the run's deadline (deadline.py). A failure of one repo (a bad
name, an OSError, a corrupt file) fails that repo only; the run always ends with its summary."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from pathlib import Path

from ..config import DownloadConfig, RepoSpec
from ..console import Console
from ..errors import LexAlignError, RuntimeFailure
from ..kinds import RepoStatus
from . import files as filejobs
from . import listing
from . import names as names_mod
from .context import FileJob, RunContext
from .deadline import Deadline, DeadlineExceeded
from .fetch import Cancelled, abort
from .manifest import Manifest, ManifestFile, read_manifest, write_manifest
from .progress import RunProgress
from .remote import RemoteFile
from .retry import Retrier, single_attempt


def hub_endpoint() -> str:
    """HF_ENDPOINT as it is when the run starts (huggingface_hub reads it once, when it is
    imported; a run honours the environment it is started in)."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


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
    status: RepoStatus = RepoStatus.PENDING
    error: str = ""
    remote: list[RemoteFile] = field(default_factory=list)


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
        self.deadline = Deadline(cfg.deadline_s)
        self.stop = threading.Event()
        self.retry = Retrier(
            cfg.retries, cfg.timeout_s, self.deadline, self.stop, console, sleep=sleep
        )
        if cfg.use_xet:
            # hf_hub_download's read timeout is process-wide: set once, before any worker runs
            from huggingface_hub import constants

            constants.HF_HUB_DOWNLOAD_TIMEOUT = cfg.timeout_s
            # its file requests (hf_hub_download, get_hf_file_metadata) retry on their own:
            # single attempts, under our policy (our own transfers never go through them)
            single_attempt()
            # and its tqdm bars would write over our progress lines
            from huggingface_hub.utils import disable_progress_bars

            disable_progress_bars()
        # what each file's work gets (files.py): values, never this object
        self.files = RunContext(
            cfg=cfg,
            console=console,
            token=token,
            retry=self.retry,
            deadline=self.deadline,
            stop=self.stop,
            started=time.time() - 1.0,  # a second of slack for coarse file timestamps
            active=set(),  # responses being read, to unblock on Ctrl-C
            # every connection comes out of max_workers (a file holds one; ranged.py's extras)
            slots=threading.Semaphore(cfg.max_workers),
            endpoint=hub_endpoint(),
        )

    # -- one repo ------------------------------------------------------------------------------

    def resolve(self, spec: RepoSpec, repo_type: str) -> tuple[str, list[RemoteFile]]:
        """Resolve the revision to a commit and list the files after the patterns."""
        from .hubparts import filter_repo_objects

        revision = spec.revision or "main"

        def call(timeout: float):
            return listing.request_listing(
                self.files.endpoint, repo_type, spec.repo_id, revision, self.token, timeout
            )

        data = self.retry(
            f"resolving {spec.repo_id}@{revision}", call, self.files.where(spec, repo_type)
        )
        commit, listed = listing.parse_listing(spec.repo_id, revision, data)
        by_name = {f.path: f for f in listed}
        names = filter_repo_objects(
            list(by_name), allow_patterns=spec.allow_patterns, ignore_patterns=spec.ignore_patterns
        )
        files = []
        for name in sorted(names):
            names_mod.check(spec.repo_id, name)
            files.append(by_name[name])
        return commit, files

    def plan_repo(
        self, spec: RepoSpec, repo_type: str, local_dir: Path, result: RepoResult
    ) -> tuple[list[RemoteFile], list[ManifestFile]] | None:
        """Resolve and decide what to fetch: (to fetch, already in place), or None when there is
        nothing more to do (dry run, offline)."""
        revision = spec.revision or "main"
        if self.offline:
            self._offline_repo(spec, local_dir, result)
            return None
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
            result.status = RepoStatus.DRY_RUN
            return None
        previous, why = read_manifest(local_dir)
        known = previous if previous and previous.commit == commit else None
        if why:
            self.console.warn(
                f"{spec.repo_id}: {why}; not trusting it: the files on disk are re-hashed against the server's listing"
            )
        local_dir.mkdir(parents=True, exist_ok=True)
        todo, kept = [], []
        for f in files:
            entry = filejobs.unchanged(spec, f, local_dir, known)
            if entry is None:
                todo.append(f)
                continue
            kept.append(entry)
            self.console.event(
                "file_done", repo_id=spec.repo_id, path=f.path, bytes=entry.size, cached=True
            )
        return todo, kept

    def finish_repo(
        self,
        spec: RepoSpec,
        repo_type: str,
        local_dir: Path,
        result: RepoResult,
        entries: list[ManifestFile],
    ) -> None:
        write_manifest(
            local_dir,
            Manifest(
                repo_id=spec.repo_id,
                repo_type=repo_type,
                revision=spec.revision or "main",
                commit=result.commit,
                files=entries,
                allow_patterns=spec.allow_patterns,
                ignore_patterns=spec.ignore_patterns,
            ),
        )
        result.status = RepoStatus.OK

    def _offline_repo(self, spec: RepoSpec, local_dir: Path, result: RepoResult) -> None:
        manifest, why = read_manifest(local_dir)
        revision = spec.revision or "main"
        if manifest is None:
            raise RuntimeFailure(
                f"{spec.repo_id}: HF_HUB_OFFLINE is set and {why or f'{local_dir} has no lexalign-manifest.json'}; run once online"
            )
        if manifest.revision != revision and not manifest.commit.startswith(revision):
            raise RuntimeFailure(
                f"{spec.repo_id}: offline, and the local copy is of revision {manifest.revision!r}, not {revision!r}"
            )
        result.commit = manifest.commit
        result.files = len(manifest.files)
        result.bytes = sum(e.size for e in manifest.files)
        result.remote = [RemoteFile(e.path, e.size, e.sha256, None) for e in manifest.files]
        if self.dry_run:
            result.status = RepoStatus.DRY_RUN_OFFLINE
            return
        missing = [
            e.path
            for e in manifest.files
            if not (local_dir / e.path).is_file() or (local_dir / e.path).stat().st_size != e.size
        ]
        if missing:
            raise RuntimeFailure(
                f"{spec.repo_id}: offline and {len(missing)} file(s) are missing or truncated, e.g. {missing[0]}"
            )
        result.status = RepoStatus.OK_OFFLINE

    # -- the run -------------------------------------------------------------------------------

    def _fail(self, result: RepoResult, exc: BaseException) -> None:
        if isinstance(exc, OSError):
            hint = "check that the folder is writable, the disk has room, and no dangling symlink is in the way"
            name = getattr(exc, "filename", None)
            msg = f"{result.repo_id}: {exc.strerror or type(exc).__name__}{f' ({name})' if name else ''}; {hint}"
        else:
            msg = str(exc)
        result.status, result.error = RepoStatus.FAILED, msg
        self.console.error(msg, repo_id=result.repo_id)

    def _done(self, result: RepoResult, started: float) -> None:
        result.seconds = time.monotonic() - started
        self.console.event(
            "repo_done",
            repo_id=result.repo_id,
            repo_type=result.repo_type,
            status=str(result.status),
            commit=result.commit,
            files=result.files,
            bytes=result.bytes,
            seconds=round(result.seconds, 3),
            local_dir=str(result.local_dir),
            error=result.error or None,
        )

    def run(self) -> list[RepoResult]:
        """Every repo, its files fetched by one pool of `max_workers`; a result for each repo,
        in config order. Ctrl-C stops every transfer (partials kept) and raises
        KeyboardInterrupt."""
        jobs = self.cfg.jobs()
        self.console.event("start", repos=len(jobs), dry_run=self.dry_run, offline=self.offline)
        results = [
            RepoResult(spec.repo_id, rt, spec.revision or "main", ld) for spec, rt, ld in jobs
        ]
        pool = ThreadPoolExecutor(max_workers=self.cfg.max_workers, thread_name_prefix="download")
        try:
            with RunProgress(self.console) as progress:
                self.files.progress = progress
                self._run(jobs, results, pool)
        except KeyboardInterrupt:
            self.stop.set()
            abort(self.files.active)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            self.files.progress = None
            pool.shutdown(wait=True, cancel_futures=True)
        return results

    def _run(self, jobs, results: list[RepoResult], pool: ThreadPoolExecutor) -> None:
        started = time.monotonic()
        in_flight: list[tuple[int, list[Future], list[ManifestFile]]] = []
        stopped = False
        for i, (spec, repo_type, local_dir) in enumerate(jobs):
            result = results[i]
            if stopped:
                result.status, result.error = RepoStatus.SKIPPED, "deadline exceeded"
                self._done(result, started)
                continue
            try:
                plan = self.plan_repo(spec, repo_type, local_dir, result)
            except DeadlineExceeded as exc:
                self._fail(result, exc)
                self._done(result, started)
                stopped = True  # nothing else can finish either
                continue
            except (LexAlignError, OSError) as exc:
                self._fail(result, exc)
                self._done(result, started)
                continue
            if plan is None:
                self._done(result, started)
                continue
            todo, kept = plan
            if self.files.progress is not None:
                self.files.progress.expect(sum(f.size or 0 for f in todo))
            futures = [
                pool.submit(
                    filejobs.fetch_one,
                    self.files,
                    FileJob(spec, repo_type, result.commit, f, local_dir),
                )
                for f in todo
            ]
            in_flight.append((i, futures, kept))
        for i, futures, kept in in_flight:
            spec, repo_type, local_dir = jobs[i]
            result = results[i]
            pending = set(futures)
            while pending:
                _, pending = wait_futures(pending, timeout=0.5)
            errors = [f.exception() for f in futures if f.exception() is not None]
            cancelled = [e for e in errors if isinstance(e, Cancelled)]
            if cancelled:
                raise KeyboardInterrupt
            if errors:
                self._fail(
                    result, next((e for e in errors if isinstance(e, DeadlineExceeded)), errors[0])
                )
                for e in errors:
                    if isinstance(e, LexAlignError | OSError):
                        continue
                    raise e  # a bug: not a per-repo failure
            else:
                fetched = [f.result() for f in futures]
                result.fetched_bytes += sum(e.size for e in fetched)
                entries = kept + fetched
                try:
                    self.finish_repo(spec, repo_type, local_dir, result, entries)
                except OSError as exc:
                    self._fail(result, exc)
            self._done(result, started)
