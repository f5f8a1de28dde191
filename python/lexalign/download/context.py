"""What a download run hands the work on each file (files.py), as values: the run's context
(config, token, the retry loop, deadline, stop event, connection slots, progress) and one
file's job. files.py never sees the orchestrator (orchestrate.py builds both)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import DownloadConfig, RepoSpec
from ..console import Console
from .deadline import Deadline
from .remote import RemoteFile
from .retry import Retrier, Where


@dataclass
class RunContext:
    cfg: DownloadConfig
    console: Console
    token: str | None
    retry: Retrier
    deadline: Deadline
    stop: threading.Event
    started: float  # time.time() when the run started (files newer than it: another run's)
    active: set  # responses being read, to unblock on Ctrl-C
    slots: threading.Semaphore  # every connection comes out of max_workers
    progress: Any = None
    endpoint: str = "https://huggingface.co"  # HF_ENDPOINT when the run started

    def url(self, job: FileJob) -> str:
        """The resolve URL of a file at the run's endpoint: huggingface_hub's URL scheme (what
        `hf_hub_url` formats; a test holds the two equal) without importing its file_download
        module, which only `use_xet` runs need."""
        from urllib.parse import quote

        from huggingface_hub import constants

        prefix = constants.REPO_TYPES_URL_PREFIXES.get(job.repo_type, "")
        revision, name = quote(job.commit, safe=""), quote(job.file.path)
        return f"{self.endpoint}/{prefix}{job.spec.repo_id}/resolve/{revision}/{name}"

    def where(self, spec: RepoSpec, repo_type: str) -> Where:
        return Where(spec.repo_id, repo_type, spec.revision or "main", bool(self.token))


@dataclass(frozen=True)
class FileJob:
    """One file of one repo at a resolved commit, and the folder it goes to."""

    spec: RepoSpec
    repo_type: str
    commit: str
    file: RemoteFile
    local_dir: Path
