"""Trackers without a tracker: report_to's names, the MLflow URI checks (credentials redacted),
params and values as logged, and the worker thread's promises — a tracker that fails says so
once and costs nothing more, one that hangs is given up at the deadline, rows keep their order."""

from __future__ import annotations

import io
import json
import threading
import time
from contextlib import redirect_stderr
from pathlib import Path

import pytest

from lexalign.console import Console
from lexalign.errors import ConfigError, redact
from lexalign.tracking import (
    check_mlflow_uri,
    flat_params,
    metric_values,
    normalise,
    read_record,
    write_record,
)
from lexalign.tracking.session import RunInfo, Trackers, Worker


@pytest.mark.parametrize(
    "given, want",
    [("none", []), ("tensorboard", ["tensorboard"]), (None, []), ([], []),
     (["MLflow", "wandb", "mlflow", "none"], ["mlflow", "wandb"])],
)  # fmt: skip
def test_report_to_names(given, want):
    assert normalise(given) == want


def test_report_to_unknown_lists_the_known_ones():
    with pytest.raises(
        ValueError, match=r"unknown tracker 'comet'; the known ones are tensorboard, mlflow, wandb"
    ):
        normalise(["mlflow", "comet"])
    with pytest.raises(ValueError, match="must be a list"):
        normalise({"mlflow": True})


@pytest.mark.parametrize(
    "uri, message",
    [
        (
            "htp://u:pw-secret@host:5000",
            "htp://***@host:5000 is malformed: the scheme must be one of",
        ),
        ("http://:5000", "is malformed: no host"),
        ("http://host:notaport", "is malformed"),
        ("sqlite:///m.db", "a SQL store needs the full mlflow package"),
        ("postgresql+psycopg2://u:pw-secret@db/m", "a SQL store needs the full mlflow package"),
        ("127.0.0.1:5000", "is malformed"),
    ],
)
def test_bad_mlflow_uris_are_one_line_and_redacted(uri, message):
    with pytest.raises(ConfigError) as e:
        check_mlflow_uri(uri, "c.yaml: report_to: mlflow")
    text = str(e.value)
    assert message in text and "pw-secret" not in text and "\n" not in text


@pytest.mark.parametrize(
    "uri",
    ["http://127.0.0.1:5000", "https://u:p@mlflow.example/x", "file:///tmp/mlruns", "databricks"],
)
def test_usable_mlflow_uris_pass(uri):
    check_mlflow_uri(uri, "c.yaml")


def test_params_are_flat_text_and_values_are_the_rows_numbers(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "key-that-must-not-appear")
    params = flat_params(
        {"model": "m", "training": {"learning_rate": 0.005, "report_to": ["mlflow"], "x": None},
         "note": "uses key-that-must-not-appear"}
    )  # fmt: skip
    assert params == {
        "model": "m",
        "training.learning_rate": "0.005",
        "training.report_to": '["mlflow"]',
        "training.x": "null",
        "note": "uses ***",
    }
    row = {"step": 3, "loss": 1.5, "epoch": 0.25, "time": 1.0, "flag": True, "name": "x", "n": 7}
    assert metric_values(row) == {"loss": 1.5, "epoch": 0.25, "n": 7.0}


def test_tracker_secrets_are_redacted_everywhere(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-planted-123")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw-planted-456")
    text = redact("a tok-planted-123 b pw-planted-456 c http://me:pw@h:1/x")
    assert text == "a *** b *** c http://***@h:1/x"


def test_the_record_is_per_tracker_and_atomic(tmp_path):
    assert read_record(tmp_path) == {}
    write_record(tmp_path, "mlflow", {"run_id": "a"})
    write_record(tmp_path, "wandb", {"run_id": "b"})
    assert read_record(tmp_path) == {"mlflow": {"run_id": "a"}, "wandb": {"run_id": "b"}}
    assert [p.name for p in tmp_path.iterdir()] == ["trackers.json"]
    (tmp_path / "trackers.json").write_text("{cut")
    assert read_record(tmp_path) == {}


class Fake(Worker):
    name = "fake"

    def __init__(self, tmp: Path, fail_at: int | None = None, hang: float = 0, open_fails=False):
        super().__init__(RunInfo(tmp, "c"), Console("human"))
        self.sent: list[int] = []
        self.closed = None
        self.fail_at, self.hang, self.open_fails = fail_at, hang, open_fails
        self.thread_names: set[str] = set()

    def open(self):
        if self.open_fails:
            raise ConnectionError("refused by http://u:secret-pw@127.0.0.1:1")

    def send(self, rows):
        self.thread_names.add(threading.current_thread().name)
        for r in rows:
            if r["step"] == self.fail_at:
                raise ConnectionError("server went away")
            time.sleep(self.hang)
            self.sent.append(r["step"])

    def close(self, status, files):
        self.closed = (status, [f.name for f in files])


def _drive(worker: Fake, steps: int, status: str = "completed") -> str:
    err = io.StringIO()
    with redirect_stderr(err):
        worker.start()
        trackers = Trackers([worker])
        for s in range(1, steps + 1):
            trackers.log({"step": s, "loss": 1.0 / s})
        trackers.drain()
        trackers.finish(status, [Path("run.json")])
    return err.getvalue()


def test_rows_go_in_order_off_the_training_thread_then_the_end(tmp_path):
    w = Fake(tmp_path)
    assert _drive(w, 50) == ""
    assert w.sent == list(range(1, 51)) and w.closed == ("completed", ["run.json"])
    assert w.thread_names == {"lexalign-fake"}


def test_a_tracker_that_fails_warns_once_and_costs_nothing_more(tmp_path):
    w = Fake(tmp_path, fail_at=3)
    err = _drive(w, 20)
    assert err.count("warning:") == 1, err
    assert "fake: stopped reporting (server went away); training goes on without it" in err
    assert "sync-metrics" in err
    assert w.sent == [1, 2] and w.closed is None and w.failed


def test_a_tracker_that_cannot_start_warns_once_redacted(tmp_path):
    w = Fake(tmp_path, open_fails=True)
    err = _drive(w, 5)
    assert err.count("warning:") == 1 and "could not start" in err, err
    assert "secret-pw" not in err and w.sent == []


def test_a_hanging_tracker_is_given_up_at_the_deadline(tmp_path, monkeypatch):
    from lexalign.tracking import session

    monkeypatch.setattr(session, "FLUSH_S", 1.0)
    w = Fake(tmp_path, hang=0.5)
    t0 = time.monotonic()
    err = _drive(w, 20)
    took = time.monotonic() - t0
    assert took < 3, took  # one deadline for drain and finish together
    assert err.count("warning:") == 1 and "not done after 1 s" in err, err
    assert len(w.sent) < 20


def test_no_tracker_on_other_ranks(tmp_path, monkeypatch):
    from lexalign.tracking import session

    monkeypatch.setenv("RANK", "1")
    t = session.start(["mlflow", "wandb"], tmp_path, {}, "c.yaml", {}, Console("quiet"))
    assert t.workers == [] and not (tmp_path / "trackers.json").exists()
    assert json.dumps(read_record(tmp_path)) == "{}"
