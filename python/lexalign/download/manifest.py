"""`lexalign-manifest.json`: what a finished download holds (repo, commit, files with size and
sha256), written atomically, read through a validated schema: a damaged manifest is not
trusted (reading it gives None and the reason), never a crash.

The entries are plain dataclasses — the run makes them from values it checked itself — and the
schema (pydantic, strict, from the same annotations) is built the first time a manifest is
read, not when the module is imported: a first download writes one and never reads one (~5 ms
of its start-up)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import ConfigDict, Field

from ..io import atomic_write_text

MANIFEST_NAME = "lexalign-manifest.json"
CHUNK = 8 * 1024 * 1024
_SCHEMA = ConfigDict(extra="ignore", strict=True)


@dataclass
class ManifestFile:
    __pydantic_config__ = _SCHEMA

    path: Annotated[str, Field(min_length=1)]
    size: Annotated[int, Field(ge=0)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    # what vouches for `sha256` (stated.py): "server" (the server stated it), "git-sha1" (the
    # server stated the git blob sha1 and the bytes had it), "computed" (nothing was stated:
    # the hash of the bytes as received); None in manifests older than this field
    sha256_source: Annotated[str | None, Field(pattern=r"^(server|git-sha1|computed)$")] = None


@dataclass
class Manifest:
    __pydantic_config__ = _SCHEMA

    repo_id: str
    repo_type: str
    revision: str
    commit: Annotated[str, Field(min_length=1)]
    files: list[ManifestFile]
    allow_patterns: list[str] | None = None
    ignore_patterns: list[str] | None = None
    completed_at: str | None = None
    lexalign_version: str | None = None

    def entry(self, path: str) -> ManifestFile | None:
        return next((f for f in self.files if f.path == path), None)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"


@functools.cache
def _schema() -> Any:
    """The strict reader of a manifest's JSON (built on first use)."""
    from pydantic import TypeAdapter

    return TypeAdapter(Manifest)


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
    atomic_write_text(path, manifest.to_json())
    return path


def read_manifest(local_dir: Path) -> tuple[Manifest | None, str]:
    """(manifest, "") or (None, why it cannot be used) — "" when there is none at all."""
    from pydantic import ValidationError

    path = local_dir / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
        json.loads(text)  # not JSON at all: unreadable, as opposed to damaged
    except FileNotFoundError:
        return None, ""
    except (OSError, ValueError) as exc:
        return None, f"{path} is unreadable ({type(exc).__name__})"
    try:
        # JSON mode: strict types as JSON has them (an object for each dataclass)
        return _schema().validate_json(text), ""
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
    atomic_write_text(local_dir / MANIFEST_NAME, manifest.to_json())
