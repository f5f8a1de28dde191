"""Trackers for real (CPU, tiny model, the image's mlflow-skinny and wandb): MLflow's folder store
and W&B's offline run hold every metrics.jsonl value at its step, read back with each tool's
own reader; a preempted and resumed run stays one tracked run; a tracker that cannot be reached
costs a warning, not the run; a config that names no tracker starts none, whatever is
installed or set; planted credentials appear in no file and no output; `sync-metrics` uploads a
run later and twice is once. The real MLflow server is tested in tests/tests/trackers.rs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli
from test_preempt import finish, start, wait_for_steps
from test_train import metrics
from tiny import sft_rows, write_jsonl

from lexalign.errors import EXIT_PREEMPTED
from lexalign.tracking import metric_values

pytestmark = pytest.mark.integration

STEPS = 8
KEY = "wandb-planted-key-0123456789abcdef0123"
PASSWORD = "planted-mlflow-password-42"


def config(tmp: Path, model: Path, out: Path, report_to: str, steps: int = STEPS) -> Path:
    data = tmp / "sft.jsonl"
    if not data.exists():
        write_jsonl(data, sft_rows(64))
    p = tmp / f"{out.name}.yaml"
    p.write_text(
        f"model: {model}\ndataset: {{path: {data}, eval_fraction: 0.25}}\noutput_dir: {out}\n"
        "lora: {r: 8, alpha: 16, dropout: 0.0}\n"
        f"training: {{max_steps: {steps}, learning_rate: 5.0e-3, batch_size: 4, max_length: 64, "
        f"logging_steps: 1, save_steps: 4, eval_steps: 4, seed: 7, report_to: {report_to}}}\n"
    )
    return p


def clean_env(**extra: str) -> dict[str, str]:
    """No tracker variable from the outer environment, and the ones a test sets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "WANDB_"))}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def run(cfg: Path, cwd: Path, **env: str):
    """finetune in a subprocess with exactly this tracker environment."""
    p = subprocess.run(
        [sys.executable, "-m", "lexalign", "finetune", "--config", str(cfg)],
        cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return p.returncode, p.stdout + p.stderr


def expected(out: Path) -> dict[str, dict[int, float]]:
    """metrics.jsonl as {key: {step: value}} (what every tracker must hold)."""
    want: dict[str, dict[int, float]] = {}
    for row in metrics(out):
        for k, v in row.items():
            if k not in ("step", "time") and isinstance(v, int | float):
                want.setdefault(k, {})[row["step"]] = float(v)
    return want


def mlflow_history(uri: str, run_id: str, keys) -> dict[str, dict[int, float]]:
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    got: dict[str, dict[int, float]] = {}
    for key in keys:
        for m in client.get_metric_history(run_id, key):
            got.setdefault(key, {})[m.step] = m.value  # a redone step: its latest value
    return got


def wandb_history(run_dir: Path) -> dict[str, dict[int, float]]:
    """The history records of an offline run, read by wandb's own reader (`wandb leet inspect
    --json`: one record per line)."""
    p = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_dir)],
        capture_output=True, text=True, timeout=120, env=clean_env(),
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    got: dict[str, dict[int, float]] = {}
    for line in p.stdout.splitlines():
        rec = json.loads(line)
        if rec.get("type") != "history":
            continue
        values = dict(rec["history"]["item"])
        step = int(values.pop("_step"))
        assert step == int(rec["history"]["step"]["num"]), rec
        for k, v in values.items():
            if not k.startswith("_"):
                got.setdefault(k, {})[step] = float(v)
    return got


def files_text(folder: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file()
    )


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, tiny_model):
    """One finetune reporting to all three trackers, MLflow to its folder store (no URI set),
    W&B offline, with a W&B key and an MLflow password planted."""
    tmp = tmp_path_factory.mktemp("tracked")
    out = tmp / "all"
    code, output = run(
        config(tmp, tiny_model, out, "[mlflow, wandb, tensorboard]"),
        tmp,
        WANDB_MODE="offline",
        WANDB_API_KEY=KEY,
        MLFLOW_TRACKING_PASSWORD=PASSWORD,
    )
    assert code == 0, output
    return out, output


def test_mlflow_folder_store_holds_every_value_at_its_step(tracked):
    out, output = tracked
    record = json.loads((out / "run.json").read_text())["trackers"]
    uri = (out / "mlruns").as_uri()
    assert record["mlflow"]["tracking_uri"] == uri
    assert record == json.loads((out / "trackers.json").read_text())
    want = expected(out)
    assert {"loss", "eval_loss", "learning_rate"} <= set(want)
    assert mlflow_history(uri, record["mlflow"]["run_id"], want) == want
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    r = client.get_run(record["mlflow"]["run_id"])
    assert r.info.status == "FINISHED"
    assert r.data.params["training.learning_rate"] == "0.005"
    assert json.loads(r.data.params["training.report_to"]) == ["mlflow", "wandb", "tensorboard"]
    assert r.data.tags["lexalign.world_size"] == "1"
    assert len(r.data.tags["lexalign.lock_sha256"]) == 64  # the image's lock
    assert {"lexalign.image_digest", "lexalign.git_revision"} <= set(r.data.tags)
    assert {f.path for f in client.list_artifacts(r.info.run_id)} == {"run.json", "loss.svg"}
    assert f"mlflow: run {r.info.run_id}" in output


def test_wandb_offline_run_read_back_with_wandbs_reader(tracked):
    out, output = tracked
    run_id = json.loads((out / "run.json").read_text())["trackers"]["wandb"]["run_id"]
    runs = sorted((out / "wandb").glob(f"offline-run-*-{run_id}"))
    assert len(runs) == 1, runs
    assert wandb_history(runs[0]) == expected(out)
    assert f"wandb sync {runs[0]}" in output


def test_tensorboard_still_written_and_no_secret_anywhere(tracked):
    out, output = tracked
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))
    text = files_text(out) + output
    assert KEY not in text and PASSWORD not in text


def test_a_resumed_run_continues_the_same_tracked_runs(tmp_path, tiny_model):
    out = tmp_path / "resumed"
    cfg = config(tmp_path, tiny_model, out, "[mlflow, wandb]", steps=12)
    proc = start(cfg, tmp_path, step_delay_s=0.3)  # W&B offline: no WANDB_API_KEY here
    wait_for_steps(proc, out, 6)  # rows: steps 1-4, the eval at 4, step 5
    proc.send_signal(signal.SIGTERM)
    err = finish(proc)
    assert proc.returncode == EXIT_PREEMPTED, err
    first = json.loads((out / "trackers.json").read_text())
    code, output = run(cfg, tmp_path)
    assert code == 0, output
    record = json.loads((out / "run.json").read_text())["trackers"]
    assert record["mlflow"]["run_id"] == first["mlflow"]["run_id"]
    assert record["wandb"]["run_id"] == first["wandb"]["run_id"]
    assert f"mlflow: continuing {first['mlflow']['run_id']}" in output
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    from mlflow.tracking import MlflowClient

    uri = (out / "mlruns").as_uri()
    client = MlflowClient(tracking_uri=uri)
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments])
    assert [r.info.run_id for r in runs] == [record["mlflow"]["run_id"]]  # one run, not two
    want = expected(out)
    assert mlflow_history(uri, record["mlflow"]["run_id"], want) == want
    parts = sorted((out / "wandb").glob(f"offline-run-*-{record['wandb']['run_id']}"))
    assert len(parts) == 2, parts  # one offline folder per part, one run id
    got: dict[str, dict[int, float]] = {}
    for part in parts:
        for k, v in wandb_history(part).items():
            got.setdefault(k, {}).update(v)
    assert got == want


def test_under_torchrun_only_rank_0_reports(tmp_path, tiny_model):
    out = tmp_path / "ddp"
    proc = start(
        config(tmp_path, tiny_model, out, "[mlflow, wandb]", steps=4), tmp_path, torchrun=True
    )
    log = finish(proc, timeout=300)
    assert proc.returncode == 0, log
    record = json.loads((out / "run.json").read_text())
    assert record["world_size"] == 2
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    from mlflow.tracking import MlflowClient

    uri = (out / "mlruns").as_uri()
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [r.info.run_id for r in runs] == [record["trackers"]["mlflow"]["run_id"]]
    assert runs[0].data.tags["lexalign.world_size"] == "2"
    want = expected(out)
    assert mlflow_history(uri, runs[0].info.run_id, want) == want
    assert len(list((out / "wandb").glob("offline-run-*"))) == 1
    assert log.count("mlflow: run ") == 1, log


def test_no_tracker_runs_unless_named(tmp_path, tiny_model):
    """Both clients installed, both configured in the environment: report_to none starts none."""
    store = tmp_path / "store"
    out = tmp_path / "none"
    code, output = run(
        config(tmp_path, tiny_model, out, "none", steps=2),
        tmp_path,
        MLFLOW_TRACKING_URI=store.as_uri(),
        WANDB_MODE="offline",
        WANDB_DIR=str(tmp_path / "wandb-dir"),
    )
    assert code == 0, output
    assert not store.exists() and not (tmp_path / "wandb-dir").exists()
    assert not (out / "wandb").exists() and not (out / "mlruns").exists()
    assert not (out / "tensorboard").exists()
    assert json.loads((out / "run.json").read_text())["trackers"] is None
    assert "mlflow" not in output and "wandb" not in output


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_an_unreachable_server_costs_one_warning_not_the_run(tmp_path, tiny_model):
    out = tmp_path / "down"
    t0 = time.monotonic()
    code, output = run(
        config(tmp_path, tiny_model, out, "[mlflow]", steps=4),
        tmp_path,
        MLFLOW_TRACKING_URI=f"http://user:{PASSWORD}@127.0.0.1:{_closed_port()}",
    )
    took = time.monotonic() - t0
    assert code == 0, output
    warnings = [line for line in output.splitlines() if line.startswith("warning: mlflow")]
    assert len(warnings) == 1, output
    assert "sync-metrics" in warnings[0] and PASSWORD not in output
    assert [r["step"] for r in metrics(out) if "loss" in r] == [1, 2, 3, 4]
    assert (out / "adapter_model.safetensors").is_file()
    assert took < 120, took


@pytest.mark.parametrize(
    "report_to, uri, message",
    [
        ("[mlflow, comet]", None, "unknown tracker 'comet'; the known ones are tensorboard, mlflow, wandb"),
        ("[mlflow]", f"htp://me:{PASSWORD}@127.0.0.1:5000", "MLFLOW_TRACKING_URI htp://***@127.0.0.1:5000 is malformed"),
        ("[mlflow]", "http://127.0.0.1:99999", "is malformed"),
        ("[mlflow]", "sqlite:///mlflow.db", "a SQL store needs the full mlflow package"),
    ],
)  # fmt: skip
def test_bad_tracker_settings_exit_2_before_training(tmp_path, tiny_model, report_to, uri, message):
    out = tmp_path / "bad"
    env = {"MLFLOW_TRACKING_URI": uri} if uri else {}
    r = run_cli(
        "finetune",
        "--config",
        str(config(tmp_path, tiny_model, out, report_to)),
        cwd=tmp_path,
        env=env,
    )
    assert r.code == 2, r.output
    assert message in r.output and PASSWORD not in r.output
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not out.exists()


def test_sync_metrics_uploads_later_into_one_run_and_twice_is_once(tracked, tmp_path):
    out, _ = tracked
    target = tmp_path / "server-store"
    env = {"MLFLOW_TRACKING_URI": target.as_uri(), "MLFLOW_ALLOW_FILE_STORE": "true"}

    def sync():
        p = subprocess.run(
            [sys.executable, "-m", "lexalign", "sync-metrics", str(out), "--to", "mlflow", "--json"],
            capture_output=True, text=True, env=clean_env(**env), timeout=120,
        )  # fmt: skip
        assert p.returncode == 0, p.stderr
        return [json.loads(x) for x in p.stdout.splitlines() if '"synced"' in x][0]

    first = sync()
    want = expected(out)
    values = sum(len(metric_values(row)) for row in metrics(out))  # rows may share a key at a step
    assert first["logged"] == values and first["already"] == 0
    assert set(first["artifacts"]) == {"run.json", "loss.svg"}
    again = sync()
    assert again["run_id"] == first["run_id"]
    assert again["logged"] == 0 and again["params"] == 0 and again["artifacts"] == []
    assert again["already"] == first["logged"]
    assert mlflow_history(target.as_uri(), first["run_id"], want) == want


def test_sync_metrics_without_metrics_names_the_folder(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "lexalign", "sync-metrics", str(tmp_path), "--to", "mlflow"],
        capture_output=True, text=True, env=clean_env(), timeout=60,
    )  # fmt: skip
    assert p.returncode == 1 and f"{tmp_path} has no metrics.jsonl" in p.stderr, p.stderr
