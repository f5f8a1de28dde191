"""Experiment trackers (`training.report_to`): which ones a run reports to, the checks made when
the config loads, and the run's tracker record (`trackers.json` in the output folder, copied
into run.json) that makes a resumed run continue the same tracked run.

transformers is given only `tensorboard` (or nothing): its MLflow and W&B integrations start a
new tracked run on every resume and switch themselves on when installed. LexAlign's own
clients (mlflow_run.py, wandb_run.py) log exactly the rows of metrics.jsonl, from rank 0, off
the training thread, so a tracker that is slow or down never holds a step.

No heavy import here: the config models import this module.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import SECRET_ENV, ConfigError, redact
from ..io import atomic_write_text

KNOWN = ("tensorboard", "mlflow", "wandb")
RECORD = "trackers.json"
# Variables that carry tracker credentials: passed into containers by name, never written.
SECRET_VARS = tuple(n for n in SECRET_ENV if n != "HF_TOKEN")
# URI schemes the image's MLflow client (mlflow-skinny) can log to by itself.
CLIENT_SCHEMES = ("http", "https", "file", "databricks", "databricks-uc")
SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def normalise(value: Any) -> list[str]:
    """`report_to` as a list of known names, in order, once each: the scalars `none` and
    `tensorboard` still work; an unknown name is a ValueError listing the known ones."""
    items = [value] if isinstance(value, str) else value
    if items is None:
        return []
    if not isinstance(items, list | tuple):
        raise ValueError(f"must be a list of trackers ({', '.join(KNOWN)}) or none")
    out: list[str] = []
    for item in items:
        name = str(item).strip().lower()
        if name == "none":
            continue
        if name not in KNOWN:
            raise ValueError(
                f"unknown tracker {str(item)!r}; the known ones are {', '.join(KNOWN)} "
                "(or none), e.g. report_to: [mlflow, tensorboard]"
            )
        if name not in out:
            out.append(name)
    return out


def shown_uri(uri: str) -> str:
    """A tracking URI as it may be printed or recorded: no `user:password@`."""
    return redact(uri)


def mlflow_uri(output_dir: Path) -> str:
    """MLFLOW_TRACKING_URI, or the folder store `<output_dir>/mlruns` when it is unset."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    return uri or (output_dir.absolute() / "mlruns").as_uri()


def check_mlflow_uri(uri: str, where: str) -> None:
    """One line (exit 2) for a tracking URI the client cannot use, credentials redacted."""
    shown = shown_uri(uri)
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{where}: MLFLOW_TRACKING_URI {shown} is malformed ({exc})") from None
    if uri in ("databricks", "databricks-uc"):
        return  # the Databricks workspace of the default profile
    scheme = parts.scheme.split("+")[0].lower()
    if scheme in SQL_SCHEMES:
        raise ConfigError(
            f"{where}: MLFLOW_TRACKING_URI {shown}: a SQL store needs the full mlflow package, and "
            "the image has its client only; run a server on it (mlflow server --backend-store-uri "
            f"{shown}) and set MLFLOW_TRACKING_URI=http://HOST:PORT, or unset it for a folder store"
        )
    if scheme not in CLIENT_SCHEMES:
        raise ConfigError(
            f"{where}: MLFLOW_TRACKING_URI {shown} is malformed: the scheme must be one of "
            f"{', '.join(s + '://' for s in CLIENT_SCHEMES)} (e.g. http://127.0.0.1:5000)"
        )
    if scheme in ("http", "https") and (not parts.hostname or port == 0):
        raise ConfigError(
            f"{where}: MLFLOW_TRACKING_URI {shown} is malformed: no host (e.g. http://127.0.0.1:5000)"
        )


def check(report_to: list[str], source: str) -> None:
    """What can be refused when the config loads (exit 2): the MLflow tracking URI."""
    if "mlflow" in report_to and os.environ.get("MLFLOW_TRACKING_URI", "").strip():
        check_mlflow_uri(os.environ["MLFLOW_TRACKING_URI"].strip(), f"{source}: report_to: mlflow")


def read_record(output_dir: Path) -> dict[str, Any]:
    """The tracker record a previous part of this run left (empty when none or unreadable)."""
    try:
        data = json.loads((output_dir / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_record(output_dir: Path, name: str, entry: dict[str, Any]) -> None:
    """Record one tracker's run (atomic: a kill leaves the old record or the new one)."""
    record = read_record(output_dir)
    record[name] = entry
    atomic_write_text(output_dir / RECORD, json.dumps(record, indent=2) + "\n")


def flat_params(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """The resolved config as `section.key` → text (MLflow params)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_params(value, f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            out[name] = redact(text)[:6000]
    return out


def metric_values(row: dict[str, Any]) -> dict[str, float]:
    """A metrics.jsonl row's values as a tracker logs them: every number but step and time."""
    return {
        k: float(v)
        for k, v in row.items()
        if k not in ("step", "time") and isinstance(v, int | float) and not isinstance(v, bool)
    }
