"""`report_to: wandb`: one W&B run id per training run, across resumes. Offline unless
WANDB_API_KEY is set (or WANDB_MODE says otherwise): the run is written under
`<output_dir>/wandb/` and the summary prints the `wandb sync` command that uploads it. An
online start that fails falls back to offline. Project WANDB_PROJECT or the config file's
name; entity WANDB_ENTITY."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..console import Console
from . import metric_values, read_record, write_record
from .session import RunInfo, Worker

INIT_TIMEOUT_S = 30.0


def mode() -> str:
    """offline unless an API key is set; WANDB_MODE wins ("disabled" included)."""
    chosen = os.environ.get("WANDB_MODE", "").strip().lower()
    if chosen:
        return chosen
    return "online" if os.environ.get("WANDB_API_KEY", "").strip() else "offline"


def offline_runs(output_dir: Path, run_id: str) -> list[Path]:
    """This run's offline folders (one per part of a resumed run), oldest first."""
    return sorted((output_dir / "wandb").glob(f"offline-run-*-{run_id}"))


class WandbRun(Worker):
    name = "wandb"

    def __init__(self, run: RunInfo, console: Console) -> None:
        super().__init__(run, console)
        self.config, self.tags = run.config, run.tags
        self.project = os.environ.get("WANDB_PROJECT", "").strip() or run.name
        self.run = None
        self.mode = mode()

    def later(self) -> str:
        return "metrics.jsonl has every value"

    def _init(self, mode: str, run_id: str):
        import wandb

        settings = wandb.Settings(
            console="off",  # LexAlign's own output stays as it is
            silent=True,
            x_disable_stats=True,  # no system-metrics sampler beside the training
            init_timeout=INIT_TIMEOUT_S,
        )
        return wandb.init(
            project=self.project,
            entity=os.environ.get("WANDB_ENTITY") or None,
            dir=str(self.output_dir),
            id=run_id,
            name=self.output_dir.name,
            resume="allow",
            mode=mode,
            config={**self.config, "lexalign": self.tags},
            settings=settings,
        )

    def open(self) -> None:
        from wandb.sdk.lib.runid import generate_id

        entry = read_record(self.output_dir).get("wandb") or {}
        run_id = entry.get("run_id") or generate_id()
        try:
            self.run = self._init(self.mode, run_id)
        except Exception as exc:  # noqa: BLE001 - an online start that fails goes offline
            if self.mode != "online":
                raise
            self.console.warn(f"wandb: online start failed ({type(exc).__name__}); writing offline")
            self.mode = "offline"
            self.run = self._init("offline", run_id)
        write_record(
            self.output_dir,
            "wandb",
            {"run_id": run_id, "project": self.project, "mode": self.mode},
        )
        how = "continuing" if entry.get("run_id") else "run"
        self.console.info(f"wandb: {how} {run_id} ({self.mode}, project {self.project})")

    def send(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.run.log(metric_values(row), step=int(row.get("step", 0)))

    def close(self, status: str, files: list[Path]) -> None:
        self.run.finish(exit_code=0 if status == "completed" else 75)
        if self.mode == "offline":
            runs = offline_runs(self.output_dir, self.run.id)
            where = " ".join(str(r) for r in runs) or str(self.output_dir / "wandb")
            self.console.info(
                f"wandb: offline run {self.run.id}; upload it with: wandb sync {where}"
            )
            self.console.event("wandb_offline", run_id=self.run.id, sync=f"wandb sync {where}")
