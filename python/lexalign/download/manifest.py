"""`lexalign-manifest.json`: what a finished download holds (repo, commit, files with size and
sha256), written atomically, read through a validated model: a damaged manifest is not
trusted (reading it gives None and the reason), never a crash."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..io import atomic_write_text

MANIFEST_NAME = "lexalign-manifest.json"
CHUNK = 8 * 1024 * 1024


class ManifestFile(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    path: str = Field(min_length=1)
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    # what vouches for `sha256` (stated.py): "server" (the server stated it), "git-sha1" (the
    # server stated the git blob sha1 and the bytes had it), "computed" (nothing was stated:
    # the hash of the bytes as received); None in manifests older than this field
    sha256_source: str | None = Field(default=None, pattern=r"^(server|git-sha1|computed)$")


class Manifest(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    repo_id: str
    repo_type: str
    revision: str
    commit: str = Field(min_length=1)
    files: list[ManifestFile]
    allow_patterns: list[str] | None = None
    ignore_patterns: list[str] | None = None
    completed_at: str | None = None
    lexalign_version: str | None = None

    def entry(self, path: str) -> ManifestFile | None:
        return next((f for f in self.files if f.path == path), None)


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


def write_manifest(local_dir: Path, manifest: Manifest) -> Path:
    from .. import __version__

    manifest.files.sort(key=lambda f: f.path)
    manifest.completed_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifest.lexalign_version = __version__
    path = local_dir / MANIFEST_NAME
    atomic_write_text(path, json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n")
    return path


def read_manifest(local_dir: Path) -> tuple[Manifest | None, str]:
    """(manifest, "") or (None, why it cannot be used) — "" when there is none at all."""
    path = local_dir / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, ""
    except (OSError, ValueError) as exc:
        return None, f"{path} is unreadable ({type(exc).__name__})"
    try:
        return Manifest.model_validate(data), ""
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
        return None, f"{path} is damaged ({where}: {err.get('msg', 'invalid')})"


def drop_entries(local_dir: Path, paths: set[str]) -> None:
    """Forget files in the manifest (after --verify found them bad), so the next download
    fetches them again."""
    manifest, _ = read_manifest(local_dir)
    if manifest is None or not paths:
        return
    manifest.files = [f for f in manifest.files if f.path not in paths]
    atomic_write_text(
        local_dir / MANIFEST_NAME, json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n"
    )
