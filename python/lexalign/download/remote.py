"""What the per-file work (files.py) needs from a download run, without importing the run
(orchestrate.py imports files.py; this keeps the dependency one way): the file a listing
announced, and the run's interface as a Protocol."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..config import DownloadConfig, RepoSpec
from ..console import Console
from .deadline import Deadline
from .retry import Where


@dataclass
class RemoteFile:
    path: str
    size: int | None
    sha256: str | None  # LFS files: published sha256
    blob_id: str | None  # regular files: git blob sha1


class Run(Protocol):
    """The parts of orchestrate.Downloader that a worker thread uses."""

    cfg: DownloadConfig
    console: Console
    token: str | None
    deadline: Deadline
    stop: threading.Event
    started: float  # time.time() when the run started (files newer than it: another run's)
    active: set
    slots: threading.Semaphore  # connections beyond one per file, out of max_workers
    progress: Any

    def retrying(self, what: str, fn: Callable[[float], Any], where: Where) -> Any: ...

    def where(self, spec: RepoSpec, repo_type: str) -> Where: ...
