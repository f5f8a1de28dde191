"""ZeRO-3 against DDP on two CPU processes: the per-rank memory the model accounts for, and
steps/s. Per-rank peak RSS is the largest peak of any process of the run (the launcher's agent
and both workers: `RUSAGE_CHILDREN` of a helper process that runs only that launch); the model's
share is that peak with a randomly initialised Llama of at least 1 GB in fp32 minus the peak of
the same run with a tiny Llama (the interpreter, torch, DeepSpeed and data cancel). Each run is
a real `python -m lexalign.launch --nproc-per-node 2 finetune.py` (LoRA, 4 steps).

Prints one JSON object. Run in the dev container:
`cargo xtask run -- python benchmarks/sharding_bench.py`."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
sys.path.insert(0, str(PROJECT / "tests"))

BIG = dict(hidden_size=2048, intermediate_size=5504, num_hidden_layers=4, vocab_size=32000)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, vocab_size=32000)


def build(out: Path, shape: dict) -> int:
    """A random-init Llama of `shape` with the tiny ChatML tokenizer; its size in fp32 bytes."""
    import torch
    from tiny import build_tiny_llama
    from transformers import LlamaConfig, LlamaForCausalLM

    build_tiny_llama(out)  # the tokenizer (and a tiny model we overwrite)
    torch.manual_seed(0)
    heads = max(2, shape["hidden_size"] // 128)
    config = LlamaConfig(
        **shape, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=256, tie_word_embeddings=False,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    return sum(p.numel() for p in model.parameters()) * 4


def one_run(model: Path, strategy: str, work: Path) -> dict:
    """Run the launch in a child of this process (a fresh helper per run) and report its
    RUSAGE_CHILDREN peak and the run's steps/s."""
    from tiny import chat_rows, write_jsonl

    data = write_jsonl(work / "chat.jsonl", chat_rows(32))
    out = work / f"out-{strategy}-{model.name}"
    cfg = work / f"{strategy}-{model.name}.yaml"
    sharding = "" if strategy == "ddp" else f", sharding: {strategy}"
    cfg.write_text(
        f"model: {model}\ndataset: {{path: {data}, messages_field: messages}}\noutput_dir: {out}\n"
        "lora: {r: 8, alpha: 16, dropout: 0.0, target_modules: [q_proj, v_proj]}\n"
        "training: {max_steps: 4, learning_rate: 1.0e-4, batch_size: 1, max_length: 32, "
        f"logging_steps: 1, save_steps: 1000, seed: 7{sharding}}}\n"
    )
    cmd = [sys.executable, "-m", "lexalign.launch", "--standalone", "--nproc-per-node", "2",
           str(PROJECT / "finetune.py"), "--config", str(cfg), "-q"]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(PROJECT), OMP_NUM_THREADS="1")
    p = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{strategy} on {model.name} failed: {p.stderr[-2000:]}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps_s = [r["steps_per_s"] for r in rows if "steps_per_s" in r][1:]  # first step warms up
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"peak_mb": peak_kb / 1024, "steps_per_s": sum(steps_s) / max(len(steps_s), 1)}


def measure(model: Path, strategy: str, work: Path) -> dict:
    """one_run in a fresh helper process (RUSAGE_CHILDREN keeps the largest child ever)."""
    p = subprocess.run(
        [sys.executable, __file__, "--one", str(model), strategy, str(work)],
        capture_output=True, text=True,
    )  # fmt: skip
    if p.returncode != 0:
        raise SystemExit(p.stderr[-3000:] or p.stdout[-3000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--one", nargs=3, metavar=("MODEL", "STRATEGY", "WORK"))
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one_run(Path(args.one[0]), args.one[1], Path(args.one[2]))))
        return
    work = Path(tempfile.mkdtemp(prefix="lexalign-sharding-bench-"))
    t = time.perf_counter()
    big_bytes = build(work / "big", BIG)
    build(work / "tiny", TINY)
    result = {"model_mb": big_bytes / 2**20, "build_s": time.perf_counter() - t}
    for strategy in ("ddp", "zero3"):
        for key in ("model_share_mb", "peak_big_mb", "peak_tiny_mb", "steps_per_s"):
            result.setdefault(f"{strategy}_{key}", [])
        for _ in range(args.runs):
            big = measure(work / "big", strategy, work)
            tiny = measure(work / "tiny", strategy, work)
            result[f"{strategy}_model_share_mb"].append(big["peak_mb"] - tiny["peak_mb"])
            result[f"{strategy}_peak_big_mb"].append(big["peak_mb"])
            result[f"{strategy}_peak_tiny_mb"].append(tiny["peak_mb"])
            result[f"{strategy}_steps_per_s"].append(big["steps_per_s"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
