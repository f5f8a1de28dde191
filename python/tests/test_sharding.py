"""Sharded training for real: two CPU processes over gloo, launched by `python -m
lexalign.launch` (torchrun's agent with LexAlign's exit codes). ZeRO-2 and ZeRO-3 give DDP's
losses; a ZeRO-3 save in the middle of a run changes nothing after it; the final adapter loads in
one process and reproduces the DDP-trained model; export merges a ZeRO-3 output; kill -9 and
SIGTERM (exit 75, no traceback) resume to the uninterrupted run's loss, also past an epoch
boundary; run.json says what ran; what cannot run is refused with one line."""

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
from tiny import preference_rows, sft_rows, write_jsonl

from lexalign import testing
from lexalign.errors import EXIT_PREEMPTED
from lexalign.train.outputs import COMPLETE_MARK

pytestmark = pytest.mark.integration

STEPS = 20  # 64 rows, batch 4 on each of 2 ranks: 8 steps an epoch, so runs cross epochs
LAUNCH = ["-m", "lexalign.launch", "--standalone", "--nproc-per-node", "2"]


def start(cfg: Path, cwd: Path, script: str = "finetune", **hooks) -> subprocess.Popen:
    """SCRIPT.py under the launcher with two processes, in a session of its own (so a test can
    kill -9 all of it); output to a file."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **testing.env(**hooks))
    env.pop("HF_TOKEN", None)
    log = open(cwd / f"{cfg.stem}.log", "w+")  # noqa: SIM115 - closed by finish()
    proc = subprocess.Popen(
        [sys.executable, *LAUNCH, str(PROJECT / f"{script}.py"), "--config", str(cfg)],
        cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    proc.log = log  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    proc.wait(timeout=timeout)
    proc.log.seek(0)  # type: ignore[attr-defined]
    text = proc.log.read()  # type: ignore[attr-defined]
    proc.log.close()  # type: ignore[attr-defined]
    return text


def launched(cfg: Path, cwd: Path, script: str = "finetune", **hooks) -> str:
    proc = start(cfg, cwd, script, **hooks)
    out = finish(proc)
    assert proc.returncode == 0, out[-4000:]
    return out


def config(tmp: Path, model: Path, data: Path, name: str, training: str = "", steps=STEPS):
    cfg = sft_config(tmp, model, tmp / name, f"{{path: {data}, eval_fraction: 0.2}}", steps)
    text = cfg.read_text().replace("seed: 7}", f"seed: 7, eval_steps: 5{training}}}")
    cfg.write_text(text)
    return cfg


def losses(out: Path) -> list[float]:
    return [r["loss"] for r in metrics(out) if "loss" in r]


def run_json(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model):
    """Uninterrupted two-process runs of one config: DDP, ZeRO-2, ZeRO-3 (saving every 5
    steps), and ZeRO-3 saving every 3 steps."""
    tmp = tmp_path_factory.mktemp("sharded")
    data = write_jsonl(tmp / "sft.jsonl", sft_rows(80))
    variants = {
        "ddp": "",
        "zero2": ", sharding: zero2",
        "zero3": ", sharding: zero3",
        "zero3-save3": ", sharding: zero3",
    }
    outs = {}
    for name, training in variants.items():
        cfg = config(tmp, tiny_model, data, name, training)
        if name == "zero3-save3":
            cfg.write_text(cfg.read_text().replace("save_steps: 5", "save_steps: 3"))
        launched(cfg, tmp)
        outs[name] = tmp / name
    return tmp, data, outs


@pytest.mark.parametrize("strategy", ["zero2", "zero3"])
def test_zero_gives_the_losses_of_ddp(trained, strategy):
    _, _, outs = trained
    ddp, zero = losses(outs["ddp"]), losses(outs[strategy])
    assert len(zero) == STEPS and all(math.isfinite(x) for x in zero)
    assert max(abs(a - b) for a, b in zip(ddp, zero, strict=True)) <= 1e-4, (ddp, zero)
    run = run_json(outs[strategy])
    assert run["distributed"] == {
        "strategy": strategy,
        "backend": "gloo",
        "world_size": 2,
        "zero_stage": int(strategy[-1]),
        "offload": "none",
        "distributed_type": "DEEPSPEED",
    }
    assert run_json(outs["ddp"])["distributed"]["strategy"] == "none"
    assert run_json(outs["ddp"])["distributed"]["distributed_type"] == "MULTI_CPU"
    # evaluation and best-step selection work the same
    assert run["eval"]["best_step"] == run_json(outs["ddp"])["eval"]["best_step"]
    assert math.isclose(
        run["eval"]["last_loss"], run_json(outs["ddp"])["eval"]["last_loss"], abs_tol=1e-4
    )


def test_a_zero3_save_mid_run_changes_no_loss_after_it(trained):
    _, _, outs = trained
    saved, plain = losses(outs["zero3-save3"]), losses(outs["zero3"])
    assert all(math.isfinite(x) and x > 0 for x in saved), saved
    assert max(abs(a - b) for a, b in zip(saved, plain, strict=True)) <= 1e-6, (saved, plain)
    ckpt = outs["zero3-save3"] / "checkpoint-3"
    assert (ckpt / COMPLETE_MARK).is_file() and (ckpt / "adapter_model.safetensors").is_file()


def _logits(base: Path, adapter: Path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    ids = tok("the court agrees the contract term is good", return_tensors="pt").input_ids
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()
    with torch.no_grad():
        return model(ids).logits, ids


@pytest.mark.parametrize("strategy", ["zero2", "zero3"])
def test_the_final_adapter_is_complete_and_reproduces_the_model(trained, tiny_model, strategy):
    from safetensors.torch import load_file

    _, _, outs = trained
    ddp_w = load_file(outs["ddp"] / "adapter_model.safetensors")
    zero_w = load_file(outs[strategy] / "adapter_model.safetensors")
    assert set(ddp_w) == set(zero_w) and ddp_w
    for k, w in zero_w.items():
        assert w.shape == ddp_w[k].shape and w.numel() > 0, k
    ours, _ = _logits(tiny_model, outs[strategy])
    theirs, _ = _logits(tiny_model, outs["ddp"])
    base, _ = _logits(tiny_model, outs["ddp"] / "checkpoint-5")
    assert (ours - theirs).abs().max().item() <= 1e-4
    assert (ours - base).abs().max().item() > 1e-3, "the adapter did not train"


def test_export_merges_a_zero3_output(trained, tiny_model):
    import torch
    from transformers import AutoModelForCausalLM

    tmp, _, outs = trained
    merged = tmp / "merged-zero3"
    r = run_cli("export", "--adapter", str(outs["zero3"]), "--output", str(merged), cwd=tmp)
    assert r.code == 0, r.output
    expected, ids = _logits(tiny_model, outs["zero3"])
    with torch.no_grad():
        got = AutoModelForCausalLM.from_pretrained(merged).eval()(ids).logits
    assert (got - expected).abs().max().item() <= 1e-4


def _wait_for_step(proc, out: Path, n: int) -> None:
    deadline = time.time() + 300
    while not (out / "metrics.jsonl").exists() or len(losses(out)) < n:
        assert time.time() < deadline and proc.poll() is None, "training did not get going"
        time.sleep(0.05)


@pytest.mark.parametrize("strategy", ["ddp", "zero3"])
def test_sigterm_to_the_launcher_exits_75_and_resume_matches(trained, tiny_model, strategy):
    tmp, data, outs = trained
    name = f"term-{strategy}"
    training = "" if strategy == "ddp" else f", sharding: {strategy}"
    cfg = config(tmp, tiny_model, data, name, training)
    proc = start(cfg, tmp, step_delay_s=0.4)
    _wait_for_step(proc, tmp / name, 11)  # past the first epoch (8 steps)
    proc.send_signal(signal.SIGTERM)  # the launcher only, as `docker stop` does to PID 1
    log = finish(proc)
    assert proc.returncode == EXIT_PREEMPTED, log[-3000:]
    assert "Traceback" not in log and "SignalException" not in log, log[-3000:]
    run = run_json(tmp / name)
    stopped = run["final_step"]
    assert run["status"] == "preempted" and 11 <= stopped < STEPS and stopped % 5, run
    ckpt = tmp / name / f"checkpoint-{stopped}"
    assert (ckpt / COMPLETE_MARK).is_file()
    launched(cfg, tmp)
    run = run_json(tmp / name)
    assert run["status"] == "completed" and run["resumed_from_step"] == stopped
    assert [r["step"] for r in metrics(tmp / name) if "loss" in r] == list(range(1, STEPS + 1))
    ref = losses(outs[strategy])
    assert max(abs(a - b) for a, b in zip(ref, losses(tmp / name), strict=True)) <= 1e-5, (
        ref,
        losses(tmp / name),
    )


def test_zero3_resumes_after_kill_9(trained, tiny_model):
    tmp, data, outs = trained
    cfg = config(tmp, tiny_model, data, "killed", ", sharding: zero3")
    ranks = tmp / "killed-ranks"
    proc = start(cfg, tmp, step_delay_s=0.4, rank_report=str(ranks))
    deadline = time.time() + 300
    while not (tmp / "killed" / "checkpoint-10" / COMPLETE_MARK).exists():
        assert time.time() < deadline and proc.poll() is None, "no checkpoint-10"
        time.sleep(0.05)
    # torchrun starts its workers in sessions of their own: kill -9 each of them and the agent
    for rank in (0, 1):
        os.kill(json.loads((ranks / f"rank-{rank}.json").read_text())["pid"], signal.SIGKILL)
    os.killpg(proc.pid, signal.SIGKILL)
    finish(proc)
    launched(cfg, tmp)
    run = run_json(tmp / "killed")
    assert run["resumed_from_step"] == 10 and run["final_step"] == STEPS
    assert [r["step"] for r in metrics(tmp / "killed") if "loss" in r] == list(range(1, STEPS + 1))
    assert math.isclose(losses(tmp / "killed")[-1], losses(outs["zero3"])[-1], abs_tol=1e-4)


def test_align_with_zero3_gives_the_losses_of_ddp(tmp_path, tiny_model):
    data = write_jsonl(tmp_path / "prefs.jsonl", preference_rows(32))
    outs = {}
    for name, training in {"ddp": "", "zero3": ", sharding: zero3"}.items():
        cfg = tmp_path / f"align-{name}.yaml"
        cfg.write_text(
            f"model: {tiny_model}\ndataset: {{path: {data}}}\noutput_dir: {tmp_path / name}\n"
            "lora: {r: 8, alpha: 16, dropout: 0.0}\nbeta: 0.1\n"
            "training: {max_steps: 8, learning_rate: 5.0e-3, batch_size: 2, max_length: 64, "
            f"logging_steps: 1, save_steps: 4, seed: 7{training}}}\n"
        )
        launched(cfg, tmp_path, "align")
        outs[name] = losses(tmp_path / name)
    assert math.isclose(outs["ddp"][0], math.log(2), abs_tol=1e-3)  # reference = base (adapter off)
    assert max(abs(a - b) for a, b in zip(outs["ddp"], outs["zero3"], strict=True)) <= 1e-4
    assert run_json(tmp_path / "zero3")["distributed"]["strategy"] == "zero3"


def test_one_process_accepts_zero3_and_offload(tmp_path, tiny_model):
    data = write_jsonl(tmp_path / "sft.jsonl", sft_rows(16))
    for name, training in {
        "single-zero3": ", sharding: zero3, offload: parameters",
        "single-zero2": ", sharding: zero2, offload: optimizer",
    }.items():
        cfg = sft_config(tmp_path, tiny_model, tmp_path / name, f"{{path: {data}}}", 3)
        cfg.write_text(cfg.read_text().replace("seed: 7}", f"seed: 7{training}}}"))
        r = run_cli("finetune", "--config", str(cfg), cwd=tmp_path)
        assert r.code == 0, r.output[-3000:]
        d = run_json(tmp_path / name)["distributed"]
        assert d["world_size"] == 1 and d["strategy"] == name.split("-")[1], d
        assert d["offload"] == ("parameters" if "zero3" in name else "optimizer"), d


def _refused(tmp_path, tiny_model, training: str, extra: str = "") -> str:
    data = write_jsonl(tmp_path / "sft.jsonl", sft_rows(16))
    cfg = sft_config(tmp_path, tiny_model, tmp_path / "out", f"{{path: {data}}}", 3, extra)
    cfg.write_text(cfg.read_text().replace("seed: 7}", f"seed: 7{training}}}"))
    r = run_cli("finetune", "--config", str(cfg), cwd=tmp_path)
    assert r.code == 2, r.output[-3000:]
    assert not (tmp_path / "out").exists(), "nothing is written"
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error")]
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_fsdp_on_cpu_is_refused(tmp_path, tiny_model):
    line = _refused(tmp_path, tiny_model, ", sharding: fsdp")
    assert "FSDP needs CUDA devices; on CPU use sharding: zero3" in line


def test_zero3_with_4bit_on_cpu_is_refused(tmp_path, tiny_model):
    line = _refused(tmp_path, tiny_model, ", sharding: zero3", "quantization: 4bit\n")
    assert "quantization: 4bit" in line


@pytest.mark.parametrize(
    "body, expected",
    [
        ('{"zero_optimization": {"stage": 3, "stage3_prefetch_bucket": 1}}', "zero_optimization.stage3_prefetch_bucket"),
        ('{"zero_optimization": {"stage": "three"}}', "zero_optimization.stage"),
        ('{"zero_optimisation": {"stage": 3}}', "did you mean zero_optimization"),
        ('{"train_micro_batch_size_per_gpu": "4"}', "train_micro_batch_size_per_gpu"),
        ("[1, 2]", "JSON object"),
        ("{nope", "not valid JSON"),
    ],
)  # fmt: skip
def test_a_bad_deepspeed_json_is_one_line_naming_the_key(tmp_path, tiny_model, body, expected):
    (tmp_path / "ds.json").write_text(body)
    line = _refused(tmp_path, tiny_model, f", deepspeed: {tmp_path / 'ds.json'}")
    assert "training.deepspeed" in line and expected in line, line


def test_a_deepspeed_json_with_an_op_to_compile_names_the_missing_tool(tmp_path, tiny_model):
    # DeepSpeed's own Adam on CPU is a C++ op built on first use; the image has no compiler
    (tmp_path / "ds.json").write_text(
        json.dumps(
            {
                "zero_optimization": {"stage": 2},
                "optimizer": {"type": "AdamW", "params": {"lr": "auto"}},
                "train_micro_batch_size_per_gpu": "auto",
            }
        )
    )
    data = write_jsonl(tmp_path / "sft.jsonl", sft_rows(16))
    cfg = sft_config(tmp_path, tiny_model, tmp_path / "out", f"{{path: {data}}}", 3)
    cfg.write_text(
        cfg.read_text().replace("seed: 7}", f"seed: 7, deepspeed: {tmp_path / 'ds.json'}}}")
    )
    r = run_cli("finetune", "--config", str(cfg), cwd=tmp_path)
    from lexalign.train.sharding import missing_build_tools

    missing = missing_build_tools()
    if not missing:
        assert r.code == 0, r.output[-3000:]  # a machine with the tools builds the op
        return
    assert r.code == 1, r.output[-3000:]
    assert not (tmp_path / "out").exists(), "nothing is written"
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("error")][-1]
    assert "DeepSpeed needs to compile an op" in line and missing[0] in line, line
