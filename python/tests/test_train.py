"""finetune and align on a tiny model, for real (CPU, fp32): outputs, formats, DPO from an SFT
adapter (first loss ln 2), resume after kill -9, Ctrl-C, two processes over gloo, and the whole
chain download → finetune → align → generate."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PROJECT, run_cli
from tiny import chat_rows, preference_rows, prompt_completion_rows, sft_rows, write_jsonl

from lexalign import testing

pytestmark = pytest.mark.integration


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def sft_config(
    tmp_path: Path, model: Path, out: Path, dataset: str, steps: int = 20, extra: str = ""
) -> Path:
    p = tmp_path / f"{out.name}.yaml"
    p.write_text(
        f"model: {model}\ndataset: {dataset}\noutput_dir: {out}\n"
        "lora: {r: 8, alpha: 16, dropout: 0.0}\n"
        f"training: {{max_steps: {steps}, learning_rate: 5.0e-3, batch_size: 4, max_length: 64, logging_steps: 1, save_steps: 5, seed: 7}}\n"
        + extra
    )
    return p


def check_outputs(out: Path, steps: int) -> None:
    for name in (
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
        "run.json",
        "metrics.jsonl",
    ):
        assert (out / name).is_file(), name
    assert (out / f"checkpoint-{steps}").is_dir()
    m = metrics(out)
    assert [r["step"] for r in m] == list(range(1, steps + 1))
    assert all(math.isfinite(r["loss"]) for r in m)
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed" and run["final_step"] == steps
    assert run["final_loss"] == m[-1]["loss"] and run["resumed_from_step"] is None
    for key in ("config", "versions", "start_time", "end_time"):
        assert key in run
    assert run["versions"]["trl"] == "0.28.0"


def generate(out: Path) -> str:
    code = (
        f"import sys; sys.path.insert(0, {str(PROJECT)!r})\n"
        "from lexalign.inference import load, generate\n"
        f"m, t = load({str(out)!r})\nprint('GEN=' + repr(generate(m, t, 'question: what is a clause?', 8)))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.mark.parametrize(
    "rows, dataset",
    [
        (sft_rows(64), "{path: DATA}"),
        (
            prompt_completion_rows(64),
            "{path: DATA, prompt_field: prompt, completion_field: completion}",
        ),
        (chat_rows(64), "{path: DATA, messages_field: messages}"),
    ],
    ids=["text", "prompt-completion", "chat"],
)
def test_finetune_formats(tmp_path, tiny_model, rows, dataset):
    data = write_jsonl(tmp_path / "data.jsonl", rows)
    out = tmp_path / "sft"
    cfg = sft_config(tmp_path, tiny_model, out, dataset.replace("DATA", str(data)))
    r = run_cli("finetune", "--config", str(cfg), cwd=tmp_path)
    assert r.code == 0, r.output
    check_outputs(out, 20)
    m = metrics(out)
    assert m[-1]["loss"] < m[0]["loss"], [x["loss"] for x in m]
    assert "GEN=" in generate(out)
    # bitsandbytes stays out unless quantization asks for it
    r2 = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            str(PROJECT / "finetune.py"),
            "--config",
            str(cfg),
            "--dry-run",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert r2.returncode == 0 and "bitsandbytes" not in r2.stderr


@pytest.fixture(scope="module")
def sft_output(tmp_path_factory, tiny_model) -> Path:
    tmp = tmp_path_factory.mktemp("sft-for-dpo")
    data = write_jsonl(tmp / "sft.jsonl", prompt_completion_rows(64))
    out = tmp / "sft"
    cfg = sft_config(
        tmp,
        tiny_model,
        out,
        f"{{path: {data}, prompt_field: prompt, completion_field: completion}}",
        steps=30,
    )
    r = run_cli("finetune", "--config", str(cfg), cwd=tmp)
    assert r.code == 0, r.output
    return out


def test_align_from_the_sft_adapter_starts_at_ln2(tmp_path, tiny_model, sft_output):
    data = write_jsonl(tmp_path / "prefs.jsonl", preference_rows(64))
    out = tmp_path / "dpo"
    cfg = tmp_path / "align.yaml"
    cfg.write_text(
        f"model: {tiny_model}\nadapter: {sft_output}\nbeta: 0.1\ndataset: {{path: {data}}}\noutput_dir: {out}\n"
        "lora: {r: 8, alpha: 16, dropout: 0.0}\n"
        "training: {max_steps: 10, learning_rate: 5.0e-3, batch_size: 4, max_length: 64, logging_steps: 1, save_steps: 5}\n"
    )
    r = run_cli("align", "--config", str(cfg), cwd=tmp_path)
    assert r.code == 0, r.output
    check_outputs(out, 10)
    m = metrics(out)
    assert abs(m[0]["loss"] - math.log(2)) < 1e-3, m[0]
    assert "rewards/accuracies" in m[0] and "rewards/margins" in m[-1]
    assert m[-1]["loss"] < m[0]["loss"]
    # the output loads on its own (base + merged SFT adapter + DPO adapter)
    assert (out / "base_adapter/adapter_model.safetensors").is_file()
    moved = tmp_path / "moved-dpo"
    shutil.copytree(out, moved)
    shutil.rmtree(out)
    assert "GEN=" in generate(moved)


def test_resume_after_kill_9_matches_an_uninterrupted_run(tmp_path, tiny_model):
    data = write_jsonl(tmp_path / "sft.jsonl", sft_rows(64))
    ds = f"{{path: {data}}}"
    ref = tmp_path / "ref"
    r = run_cli(
        "finetune",
        "--config",
        str(sft_config(tmp_path, tiny_model, ref, ds, steps=24)),
        cwd=tmp_path,
    )
    assert r.code == 0, r.output

    out = tmp_path / "killed"
    cfg = sft_config(tmp_path, tiny_model, out, ds, steps=24)
    env = dict(os.environ, **testing.env(step_delay_s=0.3))
    proc = subprocess.Popen(
        [sys.executable, str(PROJECT / "finetune.py"), "--config", str(cfg), "-q"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while not (out / "checkpoint-10" / "scheduler.pt").exists():
        assert time.time() < deadline and proc.poll() is None, "no checkpoint-10"
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "run.json").exists()
    r = run_cli("finetune", "--config", str(cfg), cwd=tmp_path)
    assert r.code == 0, r.output
    run = json.loads((out / "run.json").read_text())
    assert run["resumed_from_step"] in (10, 15, 20)
    steps = [x["step"] for x in metrics(out)]
    assert steps == list(range(1, 25)), "each step once, continuous"
    assert metrics(out)[-1]["loss"] == pytest.approx(metrics(ref)[-1]["loss"], abs=1e-4)


def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path, tiny_model):
    data = write_jsonl(tmp_path / "sft.jsonl", sft_rows(64))
    out = tmp_path / "sft"
    cfg = sft_config(tmp_path, tiny_model, out, f"{{path: {data}}}", steps=40, extra="")
    env = dict(os.environ, **testing.env(step_delay_s=0.3))
    proc = subprocess.Popen(
        [sys.executable, str(PROJECT / "finetune.py"), "--config", str(cfg)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 240
    while not (out / "metrics.jsonl").exists() or len(metrics(out)) < 7:
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    ckpts = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))
    assert ckpts and ckpts[-1] >= 7, f"a checkpoint at the interrupted step: {ckpts}"
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "interrupted"
    r = run_cli("finetune", "--config", str(cfg), cwd=tmp_path)
    assert r.code == 0, r.output
    assert json.loads((out / "run.json").read_text())["resumed_from_step"] == ckpts[-1]
    assert [x["step"] for x in metrics(out)] == list(range(1, 41))


def test_overwrite_starts_over_even_with_resume_auto(tmp_path, tiny_model):
    data = write_jsonl(tmp_path / "sft.jsonl", sft_rows(16))
    out = tmp_path / "sft"
    cfg = sft_config(tmp_path, tiny_model, out, f"{{path: {data}}}", steps=5)
    assert run_cli("finetune", "--config", str(cfg), cwd=tmp_path).code == 0
    (out / "stale.txt").write_text("from before")
    r = run_cli("finetune", "--config", str(cfg), "--overwrite", cwd=tmp_path)
    assert r.code == 0, r.output
    run = json.loads((out / "run.json").read_text())
    assert run["resumed_from_step"] is None and run["final_step"] == 5, run
    assert not (out / "stale.txt").exists(), "--overwrite started over in an empty folder"
    assert [x["step"] for x in metrics(out)] == list(range(1, 6))


def test_checkpoint_of_another_lora_shape_is_refused(tmp_path, tiny_model):
    data = write_jsonl(tmp_path / "sft.jsonl", sft_rows(16))
    out = tmp_path / "sft"
    cfg = sft_config(tmp_path, tiny_model, out, f"{{path: {data}}}", steps=5)
    assert run_cli("finetune", "--config", str(cfg), cwd=tmp_path).code == 0
    cfg.write_text(cfg.read_text().replace("steps: 5,", "steps: 10,").replace("r: 8", "r: 4"))
    r = run_cli("finetune", "--config", str(cfg), cwd=tmp_path)
    assert r.code == 2 and "lora.r differs (8 vs 4)" in r.stderr, r.output


def run_torchrun(cfg: Path, cwd: Path, env: dict[str, str]) -> None:
    """finetune.py with two processes on this machine (gloo on CPU)."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(PROJECT / "finetune.py"),
        "--config",
        str(cfg),
        "-q",
    ]
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]


def test_two_processes_over_gloo_and_resume(tmp_path, tiny_model):
    data = write_jsonl(tmp_path / "sft.jsonl", sft_rows(64))
    out = tmp_path / "ddp"
    cfg = sft_config(tmp_path, tiny_model, out, f"{{path: {data}}}", steps=10)
    report = tmp_path / "ranks"
    env = dict(os.environ, **testing.env(rank_report=str(report)))
    run_torchrun(cfg, tmp_path, env)
    ranks = [json.loads((report / f"rank-{i}.json").read_text()) for i in (0, 1)]
    assert all(r["world_size"] == 2 and r["torch_world_size"] == 2 for r in ranks)
    assert not set(ranks[0]["batches"]) & set(ranks[1]["batches"]), (
        "both ranks trained different batches"
    )
    check_outputs(out, 10)
    run = json.loads((out / "run.json").read_text())
    assert run["world_size"] == 2
    # resume the 2-process run (the optimizer loads onto plain cpu)
    cfg.write_text(cfg.read_text().replace("max_steps: 10", "max_steps: 15"))
    run_torchrun(cfg, tmp_path, env)
    run = json.loads((out / "run.json").read_text())
    assert run["resumed_from_step"] == 10 and run["final_step"] == 15
    assert [x["step"] for x in metrics(out)] == list(range(1, 16))


def test_chain_download_finetune_align_generate(tmp_path, tiny_model, hub, hub_env):
    files = {p.name: p.read_bytes() for p in tiny_model.iterdir() if p.is_file()}
    hub.add_repo("lexalign/tiny-gpt2", files)
    (tmp_path / "downloads.yaml").write_text(
        "models:\n  - repo_id: lexalign/tiny-gpt2\n    local_dir: models/tiny\n"
    )
    r = run_cli("download", "--config", "downloads.yaml", cwd=tmp_path, env=hub_env)
    assert r.code == 0, r.output
    model = tmp_path / "models/tiny"
    write_jsonl(tmp_path / "data/sft.jsonl", prompt_completion_rows(48))
    write_jsonl(tmp_path / "data/prefs.jsonl", preference_rows(48))
    (tmp_path / "finetune.yaml").write_text(
        "model: models/tiny\ndataset: {path: data/sft.jsonl, prompt_field: prompt, completion_field: completion}\n"
        "output_dir: outputs/sft\ntraining: {max_steps: 10, learning_rate: 5.0e-3, batch_size: 4, max_length: 64, logging_steps: 2, save_steps: 5}\n"
    )
    r = run_cli("finetune", "--config", "finetune.yaml", cwd=tmp_path, env=hub_env)
    assert r.code == 0, r.output
    (tmp_path / "align.yaml").write_text(
        "model: models/tiny\nadapter: outputs/sft\ndataset: {path: data/prefs.jsonl}\noutput_dir: outputs/dpo\n"
        "training: {max_steps: 6, learning_rate: 5.0e-3, batch_size: 4, max_length: 64, logging_steps: 1, save_steps: 3}\n"
    )
    r = run_cli("align", "--config", "align.yaml", cwd=tmp_path, env=hub_env)
    assert r.code == 0, r.output
    assert abs(metrics(tmp_path / "outputs/dpo")[0]["loss"] - math.log(2)) < 1e-3
    assert model.is_dir()
    old = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert "GEN=" in generate(Path("outputs/dpo"))
    finally:
        os.chdir(old)


def test_accelerate_launch_multi_gpu_flag_gives_two_ranks_on_cpu(tmp_path, tiny_model):
    """`accelerate launch --multi_gpu --num_processes 2` is a real 2-rank gloo run on CPU
    (unlike `--cpu`, which starts one process)."""
    data = write_jsonl(tmp_path / "sft.jsonl", sft_rows(64))
    out = tmp_path / "acc"
    cfg = sft_config(tmp_path, tiny_model, out, f"{{path: {data}}}", steps=6)
    report = tmp_path / "ranks"
    env = dict(os.environ, **testing.env(rank_report=str(report)))
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        str(PROJECT / "finetune.py"),
        "--config",
        str(cfg),
        "-q",
    ]
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    ranks = [json.loads((report / f"rank-{i}.json").read_text()) for i in (0, 1)]
    assert [r["torch_world_size"] for r in ranks] == [2, 2]
    assert not set(ranks[0]["batches"]) & set(ranks[1]["batches"])
    check_outputs(out, 6)
