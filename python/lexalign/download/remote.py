"""A file as the repo listing announces it (what files.py fetches and stated.py starts from)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RemoteFile:
    path: str
    size: int | None
    sha256: str | None  # LFS files: published sha256
    blob_id: str | None  # regular files: git blob sha1
