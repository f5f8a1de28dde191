"""One watcher of a file while huggingface_hub writes it (its `.incomplete` file, then the
renamed final file). It feeds two consumers from one read of the growing file:

- the hash (sha256, and the git blob id where the Hub publishes one), so the integrity check
  needs no second pass over the file when the network is the bottleneck;
- progress: a rich bar when stderr is a terminal (human mode), `file_progress` events in JSON
  mode.

`result()` returns None when the hash could not follow the file (it was rewritten from the
start, or never seen); the caller then hashes the final file whole.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..console import Console, human_bytes

POLL_S = 0.05
PROGRESS_EVERY_S = 0.25


class Watcher:
    def __init__(
        self,
        console: Console,
        repo_id: str,
        rel_path: str,
        local_dir: Path,
        size: int | None,
        git_sha1: bool,
    ) -> None:
        self.console, self.repo_id, self.rel_path, self.size = console, repo_id, rel_path, size
        self.watch_dir = local_dir / ".cache" / "huggingface" / "download" / Path(rel_path).parent
        self.final = local_dir / rel_path
        self.sha256 = hashlib.sha256()
        self.git = hashlib.sha1(b"blob %d\0" % size) if git_sha1 and size is not None else None
        self.offset = 0
        self.path: Path | None = None
        self.valid = True
        self.started = time.time()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.bar: Any = None
        self.task: Any = None

    # -- following the file -----------------------------------------------------------------

    def _pick(self) -> Path | None:
        try:
            entries = [e for e in os.scandir(self.watch_dir) if e.name.endswith(".incomplete")]
            fresh = [e for e in entries if e.stat().st_mtime >= self.started - 1]
        except OSError:
            return None
        if not fresh:
            return None
        return Path(max(fresh, key=lambda e: e.stat().st_mtime).path)

    def _consume(self, path: Path) -> None:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < self.offset:  # rewritten from the start: the running hash is useless
                self.valid = False
                return
            fh.seek(self.offset)
            while self.offset < size:
                chunk = fh.read(min(8 << 20, size - self.offset))
                if not chunk:
                    break
                self.sha256.update(chunk)
                if self.git is not None:
                    self.git.update(chunk)
                self.offset += len(chunk)

    def _loop(self) -> None:
        last_report = 0.0
        reported = -1
        while not self.stop.wait(POLL_S):
            if self.path is None:
                self.path = self._pick()
            if self.path is not None and self.valid:
                try:
                    self._consume(self.path)
                except OSError:
                    pass  # renamed to its final name: result() takes over
            now = time.monotonic()
            if self.offset != reported and now - last_report >= PROGRESS_EVERY_S:
                reported, last_report = self.offset, now
                self._progress(self.offset)

    # -- progress ---------------------------------------------------------------------------

    def _progress(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done)
        self.console.event(
            "file_progress", repo_id=self.repo_id, path=self.rel_path, bytes=done, total=self.size
        )

    def __enter__(self) -> Watcher:
        if self.console.human and sys.stderr.isatty():
            from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

            self.bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=self.console.rich,
                transient=True,
            )
            self.task = self.bar.add_task(f"{self.repo_id}: {self.rel_path}", total=self.size)
            self.bar.start()
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()
        if self.bar is not None:
            self.bar.stop()

    def result(self) -> tuple[str, str] | None:
        """(sha256, git sha1 or "") of the final file, or None."""
        if not self.valid or self.path is None:
            return None
        try:
            self._consume(self.final)
            if not self.valid or self.offset != self.final.stat().st_size:
                return None
        except OSError:
            return None
        return self.sha256.hexdigest(), self.git.hexdigest() if self.git is not None else ""

    def done_line(self) -> str:
        return f"  {self.repo_id}: {self.rel_path} ({human_bytes(self.size or 0)})"
