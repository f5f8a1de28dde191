"""File names from the server are untrusted: a mirror or proxy (HF_ENDPOINT) can send any
string. A name is used only if it is a plain relative path inside `local_dir` — no absolute
path, no `..`, `.` or empty part, no backslash, nothing under `.cache/` (where partial files
live) and not the manifest's own name — and if the path it resolves to (symlinked subfolders
included) stays inside `local_dir`. Nothing outside `local_dir` is ever written or deleted."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import RuntimeFailure
from .manifest import MANIFEST_NAME


class UnsafeName(RuntimeFailure):
    """The server named a file that would land outside the download folder."""


def problem(name: str) -> str | None:
    """Why `name` is not a safe relative file name (None when it is)."""
    if not isinstance(name, str) or not name:
        return "is empty"
    if "\x00" in name or any(ord(c) < 32 for c in name):
        return "contains control characters"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path"
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "has an empty, '.' or '..' part"
    if parts[0] == ".cache":
        return "is under .cache/, where partial downloads live"
    if name == MANIFEST_NAME:
        return "is the manifest's own name"
    return None


def check(repo_id: str, name: str) -> None:
    why = problem(name)
    if why is not None:
        shown = name if len(name) <= 120 else name[:117] + "…"
        raise UnsafeName(
            f"{repo_id}: the server listed a file {shown!r} that {why}; refusing it (nothing was "
            "written outside local_dir) — check HF_ENDPOINT if you use a mirror"
        )


def target(local_dir: Path, repo_id: str, name: str) -> Path:
    """The path for `name` in `local_dir`, after checking it resolves inside it (call again right
    before writing or deleting: a symlinked subfolder may have appeared)."""
    check(repo_id, name)
    root = os.path.realpath(local_dir)
    resolved = os.path.realpath(os.path.join(root, name))
    if os.path.commonpath([root, resolved]) != root or resolved == root:
        raise UnsafeName(
            f"{repo_id}: {name!r} resolves to {resolved}, outside {local_dir} (a symlinked "
            "subfolder?); refusing it — remove the link or use another local_dir"
        )
    return Path(local_dir) / name
