"""`download --verify`: re-hash every configured repo's files against its manifest (offline).
A file that does not match is dropped from the manifest, so the next `download` fetches it
again — which is what the printed advice says."""

from __future__ import annotations

from pathlib import Path

from ..config import DownloadConfig
from ..console import Console
from .manifest import MANIFEST_NAME, drop_entries, hash_file, read_manifest
from .stated import COMPUTED


def unvouched(local_dir: Path) -> list[str]:
    """The files of a folder's manifest whose sha256 no server stated (recorded as computed
    from the bytes received): --verify can say they are unchanged, not that they are right."""
    manifest, _ = read_manifest(local_dir)
    if manifest is None:
        return []
    return [e.path for e in manifest.files if e.sha256_source == COMPUTED]


def verify_dir(local_dir: Path) -> tuple[int, list[tuple[str, str]]]:
    """(files listed, [(path, problem)]) for one downloaded folder."""
    manifest, why = read_manifest(local_dir)
    if manifest is None:
        return 0, [("", why or f"{local_dir}: no {MANIFEST_NAME}; download the repo first")]
    problems = []
    for entry in manifest.files:
        p = local_dir / entry.path
        if not p.is_file():
            problems.append((entry.path, f"{p}: missing"))
            continue
        size = p.stat().st_size
        if size != entry.size:
            problems.append((entry.path, f"{p}: size {size} != {entry.size}"))
            continue
        digest, _ = hash_file(p, git_sha1=False)
        if digest != entry.sha256:
            problems.append((entry.path, f"{p}: sha256 {digest[:12]}… != {entry.sha256[:12]}…"))
    return len(manifest.files), problems


def verify(cfg: DownloadConfig, console: Console) -> int:
    """Verify every configured repo; returns the number of problems."""
    total = 0
    rows = []
    for spec, _repo_type, local_dir in cfg.jobs():
        n, found = verify_dir(local_dir)
        computed = [p for p in unvouched(local_dir) if p not in {path for path, _ in found}]
        drop_entries(local_dir, {path for path, _ in found if path})
        status = "ok" if not found else f"{len(found)} problem(s)"
        if computed:
            status += f", {len(computed)} unvouched"
        rows.append([spec.repo_id, str(local_dir), n, status])
        for _, p in found:
            console.error(f"verify: {p}", repo_id=spec.repo_id)
        for path in computed:
            console.warn(
                f"verify: {local_dir / path}: unchanged since its download, but no server stated a "
                "hash for it (its sha256 was computed from the bytes received): not verified "
                "against the publisher; download it from a server that states hashes to be sure"
            )
        console.event(
            "verify",
            repo_id=spec.repo_id,
            local_dir=str(local_dir),
            files=n,
            problems=[p for _, p in found],
            unvouched=computed,
        )
        total += len(found)
    console.table("verify", ["repo", "local_dir", "files", "status"], rows)
    return total
