"""One file of a download, run by a worker thread: is the copy on disk already the server's
file (re-hashed when the manifest is not trusted), and fetching it — over our bounded HTTP
path (fetch.py), or handed to huggingface_hub/hf_xet with `use_xet: true` — checking it and
moving it into place."""

from __future__ import annotations

import os
from pathlib import Path

from ..config import RepoSpec
from ..errors import RuntimeFailure
from . import names as names_mod
from .context import FileJob, RunContext
from .fetch import Cancelled, RangesUnreliable, Transfer, fetch
from .lock import Interrupted, held
from .manifest import Manifest, ManifestFile, hash_file
from .parts import lock_path
from .remote import RemoteFile
from .stated import Stated


def fetch_xet(d: RunContext, job: FileJob) -> None:
    """`use_xet: true`: hand the file to huggingface_hub (hf_xet for Xet-stored files)."""
    from huggingface_hub import hf_hub_download

    spec, f = job.spec, job.file

    # huggingface_hub reads its read timeout from one process-wide setting: the run sets it
    # once before any worker starts (orchestrate.Downloader), never from a worker thread.
    def call(timeout: float):
        return hf_hub_download(
            spec.repo_id,
            f.path,
            repo_type=job.repo_type,
            revision=job.commit,
            local_dir=str(job.local_dir),
            token=d.token,
            etag_timeout=timeout,
            endpoint=d.endpoint,
        )

    d.retry(f"downloading {spec.repo_id}/{f.path}", call, d.where(spec, job.repo_type))


def stated_for_xet(d: RunContext, job: FileJob, stated: Stated) -> None:
    """`use_xet: true` with a listing that gave no size or hash: what the resolve answer's
    headers state (huggingface_hub's own metadata request: X-Linked-Etag/ETag, X-Linked-Size
    /Content-Length), so the file is checked against the server, not only its own bytes."""
    if not stated.wants_probe():
        return
    from huggingface_hub import get_hf_file_metadata

    spec, f = job.spec, job.file
    url = d.url(job)

    def call(timeout: float):
        return get_hf_file_metadata(url, token=d.token, timeout=timeout)

    meta = d.retry(f"asking for {spec.repo_id}/{f.path}", call, d.where(spec, job.repo_type))
    stated.probed = True
    etag = (meta.etag or "").strip('"').lower()
    if len(etag) == 64 and all(c in "0123456789abcdef" for c in etag):
        stated.add("sha256", etag, "X-Linked-Etag/ETag header")
    elif len(etag) == 40 and all(c in "0123456789abcdef" for c in etag):
        stated.add("git_sha1", etag, "ETag header")
    if meta.size is not None:
        stated.add("size", int(meta.size), "X-Linked-Size/Content-Length header")


def fetched(d: RunContext, spec: RepoSpec, path: str, size: int) -> None:
    d.console.event("file_done", repo_id=spec.repo_id, path=path, bytes=size, cached=False)
    d.console.info(f"  {spec.repo_id}: {path} ({size:,} bytes)")


def judged(path: Path, stated: Stated, sha256: str = "", git_sha1: str = "") -> str | None:
    """None when the file at `path` is what every source stated (hashes computed here unless
    given), else what differs, naming the source."""
    size = path.stat().st_size
    if stated.size is not None and size != stated.size:
        return stated.mismatch(size, sha256, git_sha1)
    if not sha256 or (stated.git_sha1 and not git_sha1):
        sha256, git_sha1 = hash_file(path, git_sha1=bool(stated.git_sha1))
    return stated.mismatch(size, sha256, git_sha1)


def manifest_entry(f: RemoteFile, path: Path, stated: Stated, sha256: str) -> ManifestFile:
    """The manifest entry of a file that passed `judged`: its sha256 and what vouched for it."""
    return ManifestFile(
        path=f.path,
        size=path.stat().st_size,
        sha256=stated.sha256 or sha256,
        sha256_source=stated.source(),
    )


def fetch_one(d: RunContext, job: FileJob) -> ManifestFile:
    """Download one file (resuming), check it, move it into place; a corrupt copy is fetched
    again within the retry budget (on one connection after a ranged copy failed). Holds the
    file's lock throughout, so another run into the same folder waits (lock.py) and then finds
    the file in place. Runs in a worker thread."""
    spec, f, local_dir = job.spec, job.file, job.local_dir
    where = f"{spec.repo_id}: {f.path}"
    try:
        with held(
            lock_path(local_dir, f.path),
            where,
            deadline=d.deadline,
            stop=d.stop,
            waiting=d.console.warn,
        ):
            if not d.cfg.use_xet and (done := _placed_meanwhile(d, job)):
                fetched(d, spec, f.path, done.size)  # the other run finished it meanwhile
                return done
            while not d.slots.acquire(timeout=0.2):  # this file's own connection
                if d.stop.is_set():
                    raise Cancelled(where)
            try:
                return _fetch_checked(d, job)
            finally:
                d.slots.release()
    except Interrupted as exc:
        raise Cancelled(str(exc)) from None


def _placed_meanwhile(d: RunContext, job: FileJob) -> ManifestFile | None:
    """The file, if another run moved it into place after this run started and it matches the
    listing. A file older than this run was already judged when the repo was planned: it is
    not hashed a second time."""
    p = names_mod.target(job.local_dir, job.spec.repo_id, job.file.path)
    try:
        fresh = p.stat().st_mtime >= d.started
    except FileNotFoundError:
        return None
    return unchanged(job.spec, job.file, job.local_dir, None) if fresh else None


def _transfer(d: RunContext, job: FileJob, stated: Stated, connections: int, progress) -> Transfer:
    """One attempt at a file over our bounded HTTP path (fetch.py)."""
    from .hubparts import build_hf_headers

    spec, f = job.spec, job.file
    where = d.where(spec, job.repo_type)
    return Transfer(
        session=None,
        url=d.url(job),
        headers=build_hf_headers(token=d.token),
        local_dir=job.local_dir,
        name=f.path,
        size=stated.size,
        git_sha1=bool(stated.git_sha1) and stated.size is not None,
        deadline=d.deadline,
        timeout_s=d.cfg.timeout_s,
        stop=d.stop,
        on_bytes=progress.add if progress else (lambda n: None),
        active=d.active,
        connections=connections,
        part_bytes=d.cfg.part_bytes(),
        slots=d.slots,
        retrying=lambda what, fn: d.retry(what, fn, where),
        stated=stated,
    )


def _fetch_checked(d: RunContext, job: FileJob) -> ManifestFile:
    from .hubparts import get_session

    spec, f, local_dir = job.spec, job.file, job.local_dir
    where = d.where(spec, job.repo_type)
    progress = d.progress.file(spec.repo_id, f.path, f.size) if d.progress else None
    connections = d.cfg.max_connections_per_file
    stated = Stated.from_listing(f)  # every answer of every attempt adds what it states
    try:
        for _attempt in range(d.cfg.retries + 1):
            if d.cfg.use_xet:
                stated_for_xet(d, job, stated)
                fetch_xet(d, job)
                final = names_mod.target(local_dir, spec.repo_id, f.path)
                sha256, git_sha1 = hash_file(final, git_sha1=bool(stated.git_sha1))
                problem = judged(final, stated, sha256, git_sha1)  # one pass, both hashes
                if problem is None:
                    fetched(d, spec, f.path, final.stat().st_size)
                    return manifest_entry(f, final, stated, sha256)
                final.unlink(missing_ok=True)
            else:
                transfer = _transfer(d, job, stated, connections, progress)

                def call(timeout: float, transfer=transfer):
                    transfer.session = get_session()
                    return fetch(transfer)

                try:
                    part, sha256, git_sha1 = d.retry(
                        f"downloading {spec.repo_id}/{f.path}", call, where
                    )
                except RangesUnreliable as exc:
                    if connections == 1:
                        raise
                    problem, connections = str(exc), 1
                else:
                    size = part.stat().st_size
                    problem = judged(part, stated, sha256, git_sha1)
                    if problem is None:
                        # Checked again right before the rename: a symlinked folder may have
                        # appeared meanwhile.
                        final = names_mod.target(local_dir, spec.repo_id, f.path)
                        final.parent.mkdir(parents=True, exist_ok=True)
                        final = names_mod.target(local_dir, spec.repo_id, f.path)
                        os.replace(part, final)
                        fetched(d, spec, f.path, size)
                        return manifest_entry(f, final, stated, sha256)
                    part.unlink(missing_ok=True)
                    if connections > 1 and size > d.cfg.part_bytes():
                        connections = 1  # the ranges may be what is wrong: one connection next
                        problem += " (fetched in ranges)"
            how = " on one connection" if connections != d.cfg.max_connections_per_file else ""
            d.console.warn(f"{spec.repo_id}: {problem}; fetching it again{how}")
            d.deadline.check(f"re-downloading {f.path}")
        raise RuntimeFailure(
            f"{spec.repo_id}: {f.path} failed its integrity check {d.cfg.retries + 1} times; the server sends a corrupt file (last: {problem})"
        )
    finally:
        if progress is not None:
            progress.close()


def unchanged(
    spec: RepoSpec, f: RemoteFile, local_dir: Path, known: Manifest | None
) -> ManifestFile | None:
    """The manifest entry for a file already in place, or None when it must be fetched. With
    a trusted manifest of this commit, a present file of the recorded size is kept; without
    one, a present file is kept only if its hash matches the server's listing."""
    p = names_mod.target(local_dir, spec.repo_id, f.path)
    if not p.is_file():
        return None
    size = p.stat().st_size
    entry = known.entry(f.path) if known else None
    if entry is not None and size == entry.size and (f.size is None or size == f.size):
        return entry
    stated = Stated.from_listing(f)
    if stated.size is not None and size != stated.size:
        return None
    if not (stated.sha256 or stated.git_sha1):
        return None  # nothing to check it against: fetched again (and checked as it comes)
    sha256, git_sha1 = hash_file(p, git_sha1=bool(stated.git_sha1))
    if stated.mismatch(size, sha256, git_sha1) is None:
        return manifest_entry(f, p, stated, sha256)
    return None
