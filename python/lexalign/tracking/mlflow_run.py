"""`report_to: mlflow`: one MLflow run per training run, across resumes. Logs to
MLFLOW_TRACKING_URI (a server) or, when it is unset, to the folder store `<output_dir>/mlruns`;
experiment MLFLOW_EXPERIMENT_NAME or the config file's name. Params: the resolved config; tags:
image digest, lock hash, git revision, world size; metrics: every metrics.jsonl value at its
step; artifacts at the end: run.json, loss.svg. Also what `sync-metrics` uses to upload later."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..console import Console
from . import flat_params, metric_values, mlflow_uri, read_record, shown_uri, write_record
from .session import RunInfo, Worker

# A server that does not answer costs a few seconds, not MLflow's default 120 s x 7 retries.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
}
BATCH = 900  # MLflow takes up to 1000 metrics, 100 params, 100 tags in one log_batch


def client_for(output_dir: Path):
    """(MlflowClient, uri) for this output folder, with bounded HTTP waits."""
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    uri = mlflow_uri(output_dir)
    if uri.startswith("file:"):
        # MLflow 3 keeps the folder store in maintenance mode behind this switch; the image's
        # client has no SQL store, and a folder needs no server.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri), uri


def experiment_name(default: str) -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME", "").strip() or default


def existing_run(client, uri: str, output_dir: Path) -> str | None:
    """The MLflow run this output folder already has at `uri` (recorded and still there)."""
    entry = read_record(output_dir).get("mlflow") or {}
    run_id = entry.get("run_id")
    if not run_id or entry.get("tracking_uri") != shown_uri(uri):
        return None
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return run_id if run.info.lifecycle_stage == "active" else None


def open_run(
    client, uri: str, output_dir: Path, name: str, tags: dict[str, str]
) -> tuple[str, bool]:
    """(run id, resumed): the recorded run, else a new one; recorded before anything is logged."""
    run_id = existing_run(client, uri, output_dir)
    resumed = run_id is not None
    exp_name = experiment_name(name)
    if run_id is None:
        exp = client.get_experiment_by_name(exp_name)
        exp_id = exp.experiment_id if exp is not None else client.create_experiment(exp_name)
        run_id = client.create_run(exp_id, run_name=output_dir.name, tags=tags).info.run_id
    else:
        client.update_run(run_id, status="RUNNING")
    write_record(
        output_dir,
        "mlflow",
        {"run_id": run_id, "tracking_uri": shown_uri(uri), "experiment": exp_name},
    )
    return run_id, resumed


def log_params(client, run_id: str, params: dict[str, str]) -> int:
    """Log the params the run does not have yet (a param cannot change once logged)."""
    from mlflow.entities import Param

    have = client.get_run(run_id).data.params
    new = [Param(k, v) for k, v in params.items() if k not in have]
    for i in range(0, len(new), 100):
        client.log_batch(run_id, params=new[i : i + 100], synchronous=True)
    return len(new)


def log_rows(client, run_id: str, rows: list[dict[str, Any]], skip=None) -> int:
    """Every value of these metrics.jsonl rows at its step; `skip(key, step)` leaves one out."""
    import time

    from mlflow.entities import Metric

    metrics = []
    for row in rows:
        step = int(row.get("step", 0))
        stamp = int(float(row.get("time", time.time())) * 1000)
        for key, value in metric_values(row).items():
            if skip is None or not skip(key, step):
                metrics.append(Metric(key, value, stamp, step))
    for i in range(0, len(metrics), BATCH):
        client.log_batch(run_id, metrics=metrics[i : i + BATCH], synchronous=True)
    return len(metrics)


def log_files(client, run_id: str, files: list[Path]) -> None:
    for f in files:
        if f.is_file():
            client.log_artifact(run_id, str(f))


class MlflowRun(Worker):
    name = "mlflow"

    def __init__(self, run: RunInfo, console: Console) -> None:
        super().__init__(run, console)
        self.params, self.run_name, self.tags = flat_params(run.config), run.name, run.tags
        self.client = self.run_id = None

    def open(self) -> None:
        self.client, uri = client_for(self.output_dir)
        self.run_id, resumed = open_run(self.client, uri, self.output_dir, self.run_name, self.tags)
        if resumed:
            from mlflow.entities import RunTag

            self.client.log_batch(
                self.run_id, tags=[RunTag(k, v) for k, v in self.tags.items()], synchronous=True
            )
        log_params(self.client, self.run_id, self.params)
        how = "continuing" if resumed else "run"
        self.console.info(f"mlflow: {how} {self.run_id} at {shown_uri(uri)}")

    def send(self, rows: list[dict[str, Any]]) -> None:
        log_rows(self.client, self.run_id, rows)

    def close(self, status: str, files: list[Path]) -> None:
        log_files(self.client, self.run_id, files)
        self.client.set_terminated(self.run_id, "FINISHED" if status == "completed" else "KILLED")
