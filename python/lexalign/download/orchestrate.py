"""The download run: resolve each repo's revision to a commit and list its files, fetch each
file with huggingface_hub (resuming partial files), check it (size, and sha256 or git blob id
where the Hub publishes one), and write the manifest — within the retry policy (retry.py) and
the run's deadline (deadline.py)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import DownloadConfig, RepoSpec
from ..console import Console
from ..errors import LexAlignError, RuntimeFailure, one_line, redact
from ..kinds import RepoStatus
from .deadline import Deadline, DeadlineExceeded
from .manifest import Manifest, ManifestFile, hash_file, read_manifest, write_manifest
from .retry import Where, backoff_delay, decide, single_attempt
from .watch import Watcher


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
        self.sleep = sleep
        self.rng = random.Random()
        self.deadline = Deadline(cfg.deadline_s)
        single_attempt()

    # -- retries -------------------------------------------------------------------------------

    def retrying(self, what: str, fn: Callable[[float], Any], where: Where) -> Any:
        attempts = self.cfg.retries + 1
        for attempt in range(attempts):
            left = self.deadline.check(what)
            timeout = max(1.0, min(self.cfg.timeout_s, left))
            try:
                return fn(timeout)
            except (KeyboardInterrupt, LexAlignError):
                raise
            except Exception as exc:  # noqa: BLE001 - decided by the policy table
                verdict = decide(exc, where)
                if not verdict.transient:
                    raise RuntimeFailure(verdict.message) from exc
                cause = verdict.cause or exc
                if attempt == attempts - 1:
                    raise RuntimeFailure(
                        f"{what}: gave up after {attempts} attempt(s): {type(cause).__name__}: "
                        f"{one_line(cause, 200)}"
                    ) from exc
                delay = backoff_delay(attempt, verdict.retry_after, self.rng)
                if delay >= self.deadline.remaining():
                    raise DeadlineExceeded(
                        f"deadline_s={self.cfg.deadline_s:g} would be exceeded while {what} "
                        f"(next retry in {delay:.1f}s); raise deadline_s or retry later"
                    ) from exc
                self.console.warn(
                    f"{what}: {type(cause).__name__}: {one_line(cause, 160)}; "
                    f"retry {attempt + 1}/{attempts - 1} in {delay:.1f}s"
                )
                self.console.event(
                    "retry",
                    what=what,
                    attempt=attempt + 1,
                    delay_s=round(delay, 2),
                    error=redact(one_line(cause, 200)),
                )
                self.sleep(delay)
        raise AssertionError("unreachable")

    def where(self, spec: RepoSpec, repo_type: str) -> Where:
        return Where(spec.repo_id, repo_type, spec.revision or "main", bool(self.token))

    # -- one repo ------------------------------------------------------------------------------

    def resolve(self, spec: RepoSpec, repo_type: str) -> tuple[str, list[RemoteFile]]:
        """Resolve the revision to a commit and list the files after the patterns."""
        from huggingface_hub import HfApi
        from huggingface_hub.utils import filter_repo_objects

        api = HfApi(token=self.token)
        revision = spec.revision or "main"

        def call(timeout: float):
            return api.repo_info(
                spec.repo_id,
                revision=revision,
                repo_type=repo_type,
                files_metadata=True,
                timeout=timeout,
            )

        info = self.retrying(
            f"resolving {spec.repo_id}@{revision}", call, self.where(spec, repo_type)
        )
        siblings = list(info.siblings or [])
        by_name = {s.rfilename: s for s in siblings}
        names = filter_repo_objects(
            [s.rfilename for s in siblings],
            allow_patterns=spec.allow_patterns,
            ignore_patterns=spec.ignore_patterns,
        )
        files = []
        for name in sorted(names):
            s = by_name[name]
            lfs = getattr(s, "lfs", None)
            sha256 = lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)
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

        self.retrying(f"downloading {spec.repo_id}/{f.path}", call, self.where(spec, repo_type))

    @staticmethod
    def check_file(
        local_dir: Path, f: RemoteFile, inline: tuple[str, str] | None = None
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
            result.status = RepoStatus.DRY_RUN
            return
        previous, why = read_manifest(local_dir)
        if why:
            self.console.warn(f"{spec.repo_id}: {why}; not trusting it, every file is checked")
        known = previous if previous and previous.commit == commit else None
        local_dir.mkdir(parents=True, exist_ok=True)
        entries: list[ManifestFile] = []
        for f in files:
            p = local_dir / f.path
            entry = known.entry(f.path) if known else None
            if (
                entry
                and p.is_file()
                and p.stat().st_size == entry.size == (f.size if f.size is not None else entry.size)
            ):
                entries.append(entry)
                self.console.event(
                    "file_done", repo_id=spec.repo_id, path=f.path, bytes=entry.size, cached=True
                )
                continue
            sha256 = self._fetch_verified(spec, repo_type, commit, f, local_dir)
            size = p.stat().st_size
            result.fetched_bytes += size
            entries.append(ManifestFile(path=f.path, size=size, sha256=sha256))
        write_manifest(
            local_dir,
            Manifest(
                repo_id=spec.repo_id,
                repo_type=repo_type,
                revision=revision,
                commit=commit,
                files=entries,
                allow_patterns=spec.allow_patterns,
                ignore_patterns=spec.ignore_patterns,
            ),
        )
        result.seconds = time.monotonic() - started
        result.status = RepoStatus.OK

    def _fetch_verified(
        self, spec: RepoSpec, repo_type: str, commit: str, f: RemoteFile, local_dir: Path
    ) -> str:
        """Download one file (resuming), check it, and retry a corrupt copy within the budget."""
        for _attempt in range(self.cfg.retries + 1):
            watcher = Watcher(
                self.console, spec.repo_id, f.path, local_dir, f.size, git_sha1=bool(f.blob_id)
            )
            with watcher:
                self._fetch(spec, repo_type, commit, f, local_dir)
            problem, sha256 = self.check_file(local_dir, f, watcher.result())
            if problem is None:
                self.console.event(
                    "file_done", repo_id=spec.repo_id, path=f.path, bytes=f.size, cached=False
                )
                self.console.info(watcher.done_line())
                return sha256
            # A corrupt copy is removed so the next attempt fetches it afresh.
            (local_dir / f.path).unlink(missing_ok=True)
            self.console.warn(f"{spec.repo_id}: {problem}; fetching it again")
            self.deadline.check(f"re-downloading {f.path}")
        raise RuntimeFailure(
            f"{spec.repo_id}: {f.path} failed its integrity check {self.cfg.retries + 1} times; the server sends a corrupt file"
        )

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

    def run(self) -> list[RepoResult]:
        results: list[RepoResult] = []
        jobs = self.cfg.jobs()
        self.console.event("start", repos=len(jobs), dry_run=self.dry_run, offline=self.offline)
        for spec, repo_type, local_dir in jobs:
            result = RepoResult(spec.repo_id, repo_type, spec.revision or "main", local_dir)
            started = time.monotonic()
            try:
                self.download_repo(spec, repo_type, local_dir, result)
            except DeadlineExceeded as exc:
                result.status, result.error = RepoStatus.FAILED, str(exc)
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
                            status=RepoStatus.SKIPPED,
                            error="deadline exceeded",
                        )
                    )
                break
            except LexAlignError as exc:
                result.status, result.error = RepoStatus.FAILED, str(exc)
                self.console.error(str(exc), repo_id=spec.repo_id)
            result.seconds = time.monotonic() - started
            self.console.event(
                "repo_done",
                repo_id=spec.repo_id,
                repo_type=repo_type,
                status=str(result.status),
                commit=result.commit,
                files=result.files,
                bytes=result.bytes,
                seconds=round(result.seconds, 3),
                local_dir=str(local_dir),
                error=result.error or None,
            )
            results.append(result)
        return results
