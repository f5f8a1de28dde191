"""Progress of a download run with several files in flight: one rich display (a line per file
in flight under a line for the whole run) when stderr is a terminal in human mode, and
`file_progress` events (at most 4 per second per file) in JSON mode. Thread-safe: workers
report bytes, the main thread owns the display."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from ..console import Console

EVERY_S = 0.25


class FileProgress:
    def __init__(self, run: RunProgress, repo_id: str, path: str, size: int | None) -> None:
        self.run, self.repo_id, self.path, self.size = run, repo_id, path, size
        self.done = 0
        self.last = 0.0
        self.task: Any = None
        if run.bar is not None:
            with run.lock:
                self.task = run.bar.add_task(f"{repo_id}: {path}", total=size)

    def add(self, n: int) -> None:
        with self.run.lock:
            self.done += n
            if self.run.bar is not None:
                self.run.bar.update(self.task, completed=self.done)
                self.run.bar.update(self.run.total_task, advance=n)
            now = time.monotonic()
            due = now - self.last >= EVERY_S
            if due:
                self.last = now
        if due:
            self.run.console.event(
                "file_progress",
                repo_id=self.repo_id,
                path=self.path,
                bytes=self.done,
                total=self.size,
            )

    def close(self) -> None:
        with self.run.lock:
            if self.run.bar is not None and self.task is not None:
                self.run.bar.remove_task(self.task)


class RunProgress:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.lock = threading.Lock()
        self.bar: Any = None
        self.total_task: Any = None

    def __enter__(self) -> RunProgress:
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
            self.total_task = self.bar.add_task("all files", total=0)
            self.bar.start()
        return self

    def expect(self, n_bytes: int) -> None:
        """More bytes to fetch in this run (a repo was resolved)."""
        if self.bar is not None:
            with self.lock:
                total = self.bar.tasks[self.total_task].total or 0
                self.bar.update(self.total_task, total=total + n_bytes)

    def file(self, repo_id: str, path: str, size: int | None) -> FileProgress:
        return FileProgress(self, repo_id, path, size)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()
