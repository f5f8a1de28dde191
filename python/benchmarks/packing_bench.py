"""Packing (training.packing: true) vs padded batches: non-padding tokens trained per second by
the finetune CLI on a dataset of mixed lengths (4 to 120 words), same model, steps and
max_length. Tokens/s after warm-up (the first 10 steps are skipped), from trl's `num_tokens`
(non-padding tokens seen) and the row timestamps in metrics.jsonl. Prints one JSON object.
Run in the dev container: `cargo xtask run -- python benchmarks/packing_bench.py`."""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
sys.path.insert(0, str(PROJECT / "tests"))

from tiny import WORDS, build_tiny_model, write_jsonl  # noqa: E402

WARMUP = 10


def mixed_rows(n: int, seed: int = 5) -> list[dict]:
    rng = random.Random(seed)
    return [
        {"text": " ".join(rng.choice(WORDS) for _ in range(rng.choice([4, 8, 16, 40, 120])))}
        for _ in range(n)
    ]


def tokens_per_s(out: Path) -> float:
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "num_tokens" in r and r["step"] > WARMUP]
    first, last = rows[0], rows[-1]
    return (last["num_tokens"] - first["num_tokens"]) / (last["time"] - first["time"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lexalign-packing-bench-"))
    try:
        model = build_tiny_model(work / "model")
        data = write_jsonl(work / "mixed.jsonl", mixed_rows(512))
        result: dict[str, list[float]] = {"packed_tok_s": [], "padded_tok_s": []}
        for i in range(args.runs):
            for packing in (False, True):
                out = work / f"run{i}-{packing}"
                cfg = work / f"run{i}-{packing}.yaml"
                cfg.write_text(
                    f"model: {model}\ndataset: {{path: {data}}}\noutput_dir: {out}\n"
                    f"training: {{max_steps: {args.steps}, batch_size: 8, max_length: 256, logging_steps: 1, "
                    f"save_steps: {args.steps * 10}, seed: 42, packing: {str(packing).lower()}}}\n"
                )
                p = subprocess.run(
                    [sys.executable, str(PROJECT / "finetune.py"), "--config", str(cfg), "-q"],
                    cwd=work,
                    capture_output=True,
                    text=True,
                )
                if p.returncode != 0:
                    raise SystemExit(f"finetune (packing={packing}) failed:\n{p.stderr[-3000:]}")
                key = "packed_tok_s" if packing else "padded_tok_s"
                result[key].append(tokens_per_s(out))
        print(json.dumps({"steps": args.steps, **result}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
