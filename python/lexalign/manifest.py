"""`lexalign-manifest.json`: what a finished download holds (repo, commits, files, sha256),
written atomically, and verified offline by `lexalign download --verify`."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_NAME = "lexalign-manifest.json"
CHUNK = 8 * 1024 * 1024


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` via a temp file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def hash_file(path: Path, git_sha1: bool = True) -> tuple[str, str]:
    """(sha256, git blob sha1 or "") of a file in one pass; the sha1 only when asked for."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    git = hashlib.sha1(f"blob {size}\0".encode()) if git_sha1 else None
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            sha256.update(chunk)
            if git is not None:
                git.update(chunk)
    return sha256.hexdigest(), git.hexdigest() if git is not None else ""


@dataclass
class ManifestFile:
    path: str
    size: int
    sha256: str


def write_manifest(
    local_dir: Path,
    *,
    repo_id: str,
    repo_type: str,
    revision: str,
    commit: str,
    files: list[ManifestFile],
    patterns: dict[str, Any],
) -> Path:
    from . import __version__

    data = {
        "repo_id": repo_id,
        "repo_type": repo_type,
        "revision": revision,
        "commit": commit,
        "files": [
            {"path": f.path, "size": f.size, "sha256": f.sha256}
            for f in sorted(files, key=lambda f: f.path)
        ],
        "allow_patterns": patterns.get("allow_patterns"),
        "ignore_patterns": patterns.get("ignore_patterns"),
        "completed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "lexalign_version": __version__,
    }
    path = local_dir / MANIFEST_NAME
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path


def read_manifest(local_dir: Path) -> dict[str, Any] | None:
    path = local_dir / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or "files" not in data or "commit" not in data:
        return None
    return data


def verify_manifest(local_dir: Path) -> list[str]:
    """Re-hash every file listed in the manifest; return the problems (empty when all match)."""
    data = read_manifest(local_dir)
    if data is None:
        return [f"{local_dir}: no readable {MANIFEST_NAME}; download the repo first"]
    problems = []
    for entry in data["files"]:
        p = local_dir / entry["path"]
        if not p.is_file():
            problems.append(f"{p}: missing")
            continue
        size = p.stat().st_size
        if size != entry["size"]:
            problems.append(f"{p}: size {size} != {entry['size']}")
            continue
        digest, _ = hash_file(p, git_sha1=False)
        if digest != entry["sha256"]:
            problems.append(f"{p}: sha256 {digest[:12]}… != {entry['sha256'][:12]}…")
    return problems
