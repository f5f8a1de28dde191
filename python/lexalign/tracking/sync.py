"""`python -m lexalign sync-metrics OUTPUT_DIR --to mlflow`: upload a finished, preempted or
offline run's metrics.jsonl, params (run.json's config) and artifacts (run.json, loss.svg) to
MLFLOW_TRACKING_URI, into the run the folder already has there when it exists. Idempotent:
what the server has (a metric at its step, a param, an artifact) is not logged again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..console import Console
from ..errors import RuntimeFailure, one_line, redact
from ..plot import read_rows
from . import check_mlflow_uri, flat_params, metric_values, shown_uri


def _run_json(output_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((output_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _have_metrics(client, run_id: str, keys: set[str]) -> set[tuple[str, int]]:
    have = set()
    for key in sorted(keys):
        for m in client.get_metric_history(run_id, key):
            have.add((key, int(m.step)))
    return have


def _have_files(client, run_id: str) -> set[str]:
    return {Path(f.path).name for f in client.list_artifacts(run_id)}


def run_sync(output_dir: str, target: str, console: Console) -> int:
    """Upload; print what was logged and what the server already had. Exit 0, or 1 (one line)
    when the folder has no metrics or the server cannot be reached."""
    from . import mlflow_uri
    from .mlflow_run import client_for, log_params, log_rows, open_run

    out = Path(output_dir)
    rows = read_rows(out / "metrics.jsonl")
    if not (out / "metrics.jsonl").is_file():
        raise RuntimeFailure(
            f"sync-metrics: {out} has no metrics.jsonl; give the output_dir of a finetune or align run"
        )
    record = _run_json(out)
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    uri = mlflow_uri(out)
    check_mlflow_uri(uri, "sync-metrics")  # exit 2, credentials redacted
    try:
        client, uri = client_for(out)
        name = (record.get("trackers") or {}).get("mlflow", {}).get("experiment") or out.name
        run_id, existed = open_run(client, uri, out, name, {"lexalign.synced": "true"})
        keys = {k for row in rows for k in metric_values(row)}
        have = _have_metrics(client, run_id, keys) if existed else set()
        logged = log_rows(client, run_id, rows, skip=lambda k, s: (k, s) in have)
        already = sum(len(metric_values(row)) for row in rows) - logged
        params = log_params(client, run_id, flat_params(config))
        files = _have_files(client, run_id)
        sent = [
            p for p in (out / "run.json", out / "loss.svg") if p.is_file() and p.name not in files
        ]
        for p in sent:
            client.log_artifact(run_id, str(p))
        status = "FINISHED" if record.get("status") == "completed" else "KILLED"
        client.set_terminated(run_id, status)
    except RuntimeFailure:
        raise
    except Exception as exc:  # noqa: BLE001 - the server's answer, in one line
        raise RuntimeFailure(
            f"sync-metrics: could not upload to {shown_uri(uri)}: "
            f"{type(exc).__name__}: {redact(one_line(exc, 300))}"
        ) from None
    console.event(
        "synced", run_id=run_id, tracking_uri=shown_uri(uri), logged=logged,
        already=already, params=params, artifacts=[p.name for p in sent],
    )  # fmt: skip
    console.info(
        f"sync-metrics: {logged} values logged ({already} already there), {params} params, "
        f"{len(sent)} artifacts to {'run' if existed else 'new run'} {run_id} at {shown_uri(uri)}"
    )
    return 0
