"""Training wrapper overhead: the finetune CLI vs a minimal plain-trl script (plain_trl.py) on
the same tiny model, data and steps. Steps/s after warm-up (the first 10 steps are skipped) and
peak RSS of each process. Prints one JSON object.
Run in the dev container: `cargo xtask run -- python benchmarks/train_bench.py`."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
sys.path.insert(0, str(PROJECT / "tests"))

from tiny import build_tiny_model, sft_rows, write_jsonl  # noqa: E402

WARMUP = 10

RSS = (
    "import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
    "print('MAXRSS_KB=%d' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
    "sys.exit(p.returncode)"
)


def timed(cmd: list[str], cwd: Path) -> int:
    """Run cmd in a fresh helper process; return the child's peak RSS in kB."""
    p = subprocess.run([sys.executable, "-c", RSS, *cmd], cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{cmd[1]} failed:\n{p.stderr[-3000:]}")
    return int(p.stderr.rsplit("MAXRSS_KB=", 1)[1].split()[0])


def steps_per_s(stamps: list[tuple[int, float]]) -> float:
    stamps = sorted(stamps)
    after = [s for s in stamps if s[0] > WARMUP]
    (s0, t0), (s1, t1) = after[0], after[-1]
    return (s1 - s0) / (t1 - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lexalign-train-bench-"))
    try:
        model = build_tiny_model(work / "model")
        data = write_jsonl(work / "sft.jsonl", sft_rows(256))
        cli, plain, cli_rss, plain_rss = [], [], [], []
        for i in range(args.runs):
            out = work / f"cli{i}"
            cfg = work / f"cli{i}.yaml"
            cfg.write_text(
                f"model: {model}\ndataset: {{path: {data}}}\noutput_dir: {out}\n"
                "lora: {r: 8, alpha: 16, dropout: 0.05, target_modules: [c_attn, c_proj]}\n"
                f"training: {{max_steps: {args.steps}, learning_rate: 2.0e-4, batch_size: 4, max_length: 128, "
                f"logging_steps: 1, save_steps: {args.steps * 10}, seed: 42}}\n"
            )
            cli_rss.append(
                timed(
                    [sys.executable, str(PROJECT / "finetune.py"), "--config", str(cfg), "-q"], work
                )
            )
            stamps = [
                (r["step"], r["time"])
                for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
            ]
            cli.append(steps_per_s(stamps))
            times = work / f"plain{i}.jsonl"
            plain_rss.append(
                timed(
                    [
                        sys.executable,
                        str(HERE / "plain_trl.py"),
                        str(model),
                        str(data),
                        str(work / f"plain{i}"),
                        str(args.steps),
                        str(times),
                    ],
                    work,
                )
            )
            stamps = [
                (r["step"], r["time"]) for r in map(json.loads, times.read_text().splitlines())
            ]
            plain.append(steps_per_s(stamps))
        print(
            json.dumps(
                {
                    "steps": args.steps,
                    "cli_steps_s": cli,
                    "plain_steps_s": plain,
                    "cli_peak_rss_mb": [k / 1024 for k in cli_rss],
                    "plain_peak_rss_mb": [k / 1024 for k in plain_rss],
                }
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
