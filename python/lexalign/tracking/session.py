"""A training run's trackers: each client runs on a thread of its own (rows queue up, the thread
sends them), so no training step waits on a server. A tracker that fails says so in one
warning line and stops; metrics.jsonl keeps every value and `sync-metrics` uploads it later.
Only rank 0 reports."""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..console import Console
from ..errors import one_line, redact

# How long the end of a run waits for a tracker to send what it queued (seconds).
FLUSH_S = float(os.environ.get("LEXALIGN_TRACKER_FLUSH_S", "20"))


@dataclass(frozen=True)
class RunInfo:
    """What a tracker is told about the run."""

    output_dir: Path
    name: str  # the config file's name: the default experiment (MLflow) and project (W&B)
    config: dict[str, Any] = field(default_factory=dict)  # the resolved config
    tags: dict[str, str] = field(default_factory=dict)  # image, lock, git revision, world size


class Worker:
    """One tracker client on its own thread. Subclasses implement open/send/close; every call
    runs on the thread, in order."""

    name = "tracker"

    def __init__(self, run: RunInfo, console: Console) -> None:
        self.run_info, self.output_dir, self.console = run, run.output_dir, console
        self.failed = False
        self._queue: queue.Queue = queue.Queue()
        self._idle = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"lexalign-{self.name}", daemon=True
        )

    # --- what a tracker implements (on the worker thread) ---
    def open(self) -> None:
        raise NotImplementedError

    def send(self, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def close(self, status: str, files: list[Path]) -> None:
        raise NotImplementedError

    def later(self) -> str:
        """How to upload what this tracker did not send."""
        return f"metrics.jsonl has every value; upload it later with: python -m lexalign sync-metrics {self.output_dir} --to mlflow"

    # --- called from the training thread ---
    def start(self) -> None:
        self._thread.start()

    def log(self, row: dict[str, Any]) -> None:
        if not self.failed:
            self._idle.clear()
            self._queue.put(("row", row))

    def drain(self, deadline: float) -> None:
        """Wait (until `deadline`) for the rows queued so far to be sent."""
        self._queue.put(("mark", None))
        self._idle.wait(max(deadline - time.monotonic(), 0))

    def finish(self, status: str, files: list[Path], deadline: float) -> None:
        """Send what is queued, the files, the run's end; give up at `deadline` with one line."""
        if self.failed:
            return
        self._queue.put(("end", (status, files)))
        self._thread.join(max(deadline - time.monotonic(), 0))
        if self._thread.is_alive() and not self.failed:
            self.failed = True
            self.console.warn(
                f"{self.name}: not done after {FLUSH_S:.0f} s ({self._queue.qsize()} rows still queued); "
                f"leaving it. {self.later()}"
            )

    # --- the thread ---
    def _fail(self, what: str, exc: BaseException) -> None:
        self.failed = True
        self._idle.set()
        self.console.warn(
            f"{self.name}: {what} ({redact(one_line(exc, 300))}); training goes on without it. "
            f"{self.later()}"
        )

    def _loop(self) -> None:
        try:
            self.open()
        except Exception as exc:  # noqa: BLE001 - a tracker never stops training
            self._fail("could not start", exc)
            return
        while True:
            kind, item = self._queue.get()
            rows = [item] if kind == "row" else []
            while kind == "row":  # send what has queued up in one batch
                try:
                    kind, item = self._queue.get_nowait()
                except queue.Empty:
                    kind = "none"
                    break
                if kind == "row":
                    rows.append(item)
            try:
                if rows:
                    self.send(rows)
                if kind == "end":
                    self.close(*item)
                    return
            except Exception as exc:  # noqa: BLE001
                self._fail("stopped reporting", exc)
                return
            if kind in ("mark", "none") and self._queue.empty():
                self._idle.set()


class Trackers:
    """The run's trackers (none on ranks other than 0)."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers
        self._deadline: float | None = None

    def _until(self) -> float:
        """One deadline for the whole end of the run (drain, then finish)."""
        if self._deadline is None:
            self._deadline = time.monotonic() + FLUSH_S
        return self._deadline

    def log(self, row: dict[str, Any]) -> None:
        for w in self.workers:
            w.log(row)

    def drain(self) -> None:
        for w in self.workers:
            w.drain(self._until())

    def finish(self, status: str, files: list[Path]) -> None:
        for w in self.workers:
            w.finish(status, files, self._until())


def start(
    report_to: list[str],
    output_dir: Path,
    config: dict[str, Any],
    source: str,
    tags: dict[str, str],
    console: Console,
) -> Trackers:
    """Start the trackers `report_to` names besides tensorboard (transformers writes those
    event files). Returns at once: each connects on its own thread."""
    from ..train.dist import is_main

    if not is_main():
        return Trackers([])
    workers: list[Worker] = []
    run = RunInfo(output_dir, Path(source).stem or output_dir.name, config, tags)
    if "mlflow" in report_to:
        from .mlflow_run import MlflowRun

        workers.append(MlflowRun(run, console))
    if "wandb" in report_to:
        from .wandb_run import WandbRun

        workers.append(WandbRun(run, console))
    for w in workers:
        w.start()
    return Trackers(workers)
