"""Preemption for real (CPU, tiny model): SIGTERM/SIGUSR1 finish the step in flight, save a
complete checkpoint at it, write run.json `"status": "preempted"` and exit 75; `resume: auto`
continues from it with no step redone past the one in flight, ending at the loss of an
uninterrupted run; a signal before the first step saves nothing; a second signal during the save
exits at once and the previous checkpoint stays the one resumed; under torchrun a signal to one
rank stops every rank at the same step."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PROJECT, run_cli
from test_train import metrics, sft_config
from tiny import sft_rows, write_jsonl

from lexalign import testing
from lexalign.errors import EXIT_PREEMPTED
from lexalign.train.outputs import COMPLETE_MARK, complete_checkpoints

pytestmark = pytest.mark.integration

STEPS = 16


def start(cfg: Path, cwd: Path, *, torchrun: bool = False, **hooks) -> subprocess.Popen:
    """finetune.py (under torchrun with two processes if asked); its output goes to a file
    (a pipe nobody reads would stall it), read back by finish()."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **testing.env(**hooks))
    env.pop("HF_TOKEN", None)
    launch = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    log = open(cwd / f"{cfg.stem}.log", "w+")  # noqa: SIM115 - closed by finish()
    proc = subprocess.Popen(
        [sys.executable, *(launch if torchrun else []), str(PROJECT / "finetune.py"),
         "--config", str(cfg)],
        cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    proc.log = log  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen, timeout: float = 120) -> str:
    """Wait for the process; its output."""
    proc.wait(timeout=timeout)
    proc.log.seek(0)  # type: ignore[attr-defined]
    text = proc.log.read()  # type: ignore[attr-defined]
    proc.log.close()  # type: ignore[attr-defined]
    return text


def wait_for_steps(proc: subprocess.Popen, out: Path, n: int) -> int:
    """Wait until at least n steps are logged; the last logged step."""
    deadline = time.time() + 240
    while not (out / "metrics.jsonl").exists() or len(metrics(out)) < n:
        assert time.time() < deadline and proc.poll() is None, "training did not get going"
        time.sleep(0.02)
    return metrics(out)[-1]["step"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model):
    """An uninterrupted run: its final loss is what every preempted-and-resumed run must reach."""
    tmp = tmp_path_factory.mktemp("preempt-ref")
    data = write_jsonl(tmp / "sft.jsonl", sft_rows(64))
    out = tmp / "ref"
    r = run_cli(
        "finetune",
        "--config",
        str(sft_config(tmp, tiny_model, out, f"{{path: {data}}}", STEPS)),
        cwd=tmp,
    )
    assert r.code == 0, r.output
    return data, metrics(out)[-1]["loss"]


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGUSR1"])
def test_a_signal_saves_the_step_in_flight_and_resume_matches(tmp_path, tiny_model, reference, sig):
    data, ref_loss = reference
    out = tmp_path / "run"
    # save_steps 5: the regular checkpoints are 5, 10, 15; the signal comes at step 6 or 7
    cfg = sft_config(tmp_path, tiny_model, out, f"{{path: {data}}}", STEPS)
    proc = start(cfg, tmp_path, step_delay_s=0.4)
    seen = wait_for_steps(proc, out, 6)
    proc.send_signal(getattr(signal, sig))
    err = finish(proc)
    assert proc.returncode == EXIT_PREEMPTED, err
    assert f"{sig}: finishing this step" in err
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "preempted", run
    stopped = run["final_step"]
    # the step in flight was finished, nothing more: at most one step past the last logged one
    assert seen <= stopped <= seen + 1, (seen, stopped)
    assert stopped % 5 != 0, "the save came from the signal, not from save_steps"
    ckpt = out / f"checkpoint-{stopped}"
    for name in (
        "adapter_model.safetensors",
        "optimizer.pt",
        "scheduler.pt",
        "rng_state.pth",
        "trainer_state.json",
        COMPLETE_MARK,
    ):
        assert (ckpt / name).is_file(), name
    assert complete_checkpoints(out)[-1] == ckpt
    assert json.loads((ckpt / "trainer_state.json").read_text())["global_step"] == stopped

    r = run_cli("finetune", "--config", str(cfg), cwd=tmp_path)
    assert r.code == 0, r.output
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed" and run["resumed_from_step"] == stopped
    assert [x["step"] for x in metrics(out)] == list(range(1, STEPS + 1))
    assert math.isclose(metrics(out)[-1]["loss"], ref_loss, abs_tol=1e-5), (
        metrics(out)[-1]["loss"],
        ref_loss,
    )


def test_a_signal_before_the_first_step_saves_nothing(tmp_path, tiny_model, reference):
    data, _ = reference
    out = tmp_path / "early"
    cfg = sft_config(tmp_path, tiny_model, out, f"{{path: {data}}}", STEPS)
    proc = start(cfg, tmp_path, signal_before_train="SIGTERM")
    err = finish(proc)
    assert proc.returncode == EXIT_PREEMPTED, err
    assert "before the first training step" in err
    assert not list(out.glob("checkpoint-*")) and not (out / "run.json").exists()


def test_a_second_signal_during_the_save_exits_at_once_and_keeps_the_previous_checkpoint(
    tmp_path, tiny_model, reference
):
    data, _ = reference
    out = tmp_path / "twice"
    cfg = sft_config(tmp_path, tiny_model, out, f"{{path: {data}}}", STEPS)
    proc = start(cfg, tmp_path, step_delay_s=0.3, save_delay_s=30)
    # the regular save at step 5 completes only after its 30 s delay: wait for it, then
    # preempt; the preemption save hangs in its delay, where the second signal hits it
    deadline = time.time() + 240
    while not (out / "checkpoint-5" / COMPLETE_MARK).exists():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    while not [p for p in out.glob("checkpoint-*") if p.name != "checkpoint-5"]:
        assert time.time() < deadline and proc.poll() is None, "no preemption save started"
        time.sleep(0.05)
    time.sleep(1.5)  # past the window in which copies of the first signal are ignored
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    err = finish(proc, 60)
    assert time.time() - t0 < 10, "the second signal did not exit at once"
    assert proc.returncode == EXIT_PREEMPTED, err
    assert "exiting now" in err
    assert complete_checkpoints(out)[-1].name == "checkpoint-5"
    r = run_cli("finetune", "--config", str(cfg), cwd=tmp_path)
    assert r.code == 0, r.output
    assert json.loads((out / "run.json").read_text())["resumed_from_step"] == 5


def test_a_signal_to_one_rank_stops_every_rank_at_one_step(tmp_path, tiny_model, reference):
    data, _ = reference
    out = tmp_path / "ddp"
    ranks = tmp_path / "ranks"
    cfg = sft_config(tmp_path, tiny_model, out, f"{{path: {data}}}", 40)
    proc = start(cfg, tmp_path, torchrun=True, step_delay_s=0.3, rank_report=str(ranks))
    wait_for_steps(proc, out, 3)
    pid1 = json.loads((ranks / "rank-1.json").read_text())["pid"]
    os.kill(pid1, signal.SIGTERM)  # only rank 1 hears it
    err = finish(proc, 180)
    assert proc.returncode != 0, err
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "preempted" and run["world_size"] == 2, run
    stopped = run["final_step"]
    assert stopped < 40
    ckpt = out / f"checkpoint-{stopped}"
    assert (ckpt / COMPLETE_MARK).is_file()
    assert (ckpt / "rng_state_0.pth").is_file() and (ckpt / "rng_state_1.pth").is_file()
    assert complete_checkpoints(out)[-1] == ckpt
