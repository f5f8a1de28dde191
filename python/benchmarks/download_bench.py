"""Download throughput: the LexAlign CLI vs curl on the same file from the local Hub imitation.

Prints one JSON object: {"size_mb", "cli_mb_s": [...], "curl_mb_s": [...], "help_s": [...],
"fixed_s": [...], "hf_fixed_s": [...], "cli_per_byte_mb_s": [...]} — fixed_s: the same CLI run
on a one-file repo of 2 KB (start-up, config, API call, manifest), the part of each run that
does not depend on the size, FIXED_PAIRS times per run; hf_fixed_s: `hf download`
(huggingface_hub's own CLI) of the same repo, alternating with it; cli_per_byte_mb_s: the size
over each run's time less the median of that run's fixed part (receive, write, sha256).
Run in the dev container: `cargo xtask run -- python benchmarks/download_bench.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
sys.path.insert(0, str(PROJECT / "tests"))

from hubsim import HubSim  # noqa: E402

FIXED_PAIRS = 5  # per run: a 0.17 s run swings by ±5 ms, so a row's median wants more than 3


def median(xs: list[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def timed(cmd: list[str], **kw) -> float:
    """Seconds one command takes, starting with no dirty pages of the last to write back."""
    os.sync()
    t = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=True, **kw)
    return time.perf_counter() - t


def fixed_pairs(run_dir: Path, env: dict, pairs: int) -> tuple[list[float], list[float]]:
    """The CLI and `hf download` on the 2 KB repo, alternating, each into a folder of its own."""
    cli, hf = [], []
    for j in range(pairs):
        d = run_dir / f"tiny{j}"
        d.mkdir()
        (d / "t.yaml").write_text("models:\n  - repo_id: bench/tiny\n")
        cli.append(
            timed([sys.executable, str(PROJECT / "download.py"), "--config", "t.yaml", "-q"],
                  cwd=d, env=env)
        )  # fmt: skip
        hf.append(
            timed([str(Path(sys.executable).parent / "hf"), "download", "bench/tiny",
                   "--local-dir", str(d / "hf-tiny"), "--quiet"], cwd=d, env=env)
        )  # fmt: skip
        if (d / "hf-tiny" / "model.safetensors").stat().st_size != 2048:
            raise SystemExit("hf download wrote a short file")
        if (d / "models" / "tiny" / "model.safetensors").stat().st_size != 2048:
            raise SystemExit("the CLI wrote a short file")
    return cli, hf


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--rate-mb-s",
        type=float,
        default=0,
        help="emulate a link of this speed (0: loopback speed)",
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lexalign-dl-bench-"))
    try:
        blob = work / "serve" / "model.safetensors"
        blob.parent.mkdir(parents=True)
        with blob.open("wb") as f:
            for _ in range(args.size_mb):
                f.write(os.urandom(1_000_000))
        sim = HubSim()
        if args.rate_mb_s:
            sim.rate_bytes_per_s = args.rate_mb_s * 1e6
        repo = sim.add_repo("bench/big", {"model.safetensors": blob})
        sim.hashes(repo, "model.safetensors")  # hash once, outside the timings
        tiny = sim.add_repo("bench/tiny", {"model.safetensors": os.urandom(2048)})
        sim.hashes(tiny, "model.safetensors")
        url = sim.start()
        commit = repo.revisions["main"]
        size = blob.stat().st_size
        env = dict(os.environ, HF_ENDPOINT=url, HF_HUB_DISABLE_TELEMETRY="1")
        env.pop("HF_TOKEN", None)
        cli, curl, helps, fixed, hf_fixed, per_byte = [], [], [], [], [], []
        for i in range(args.runs):
            run_dir = work / f"run{i}"
            run_dir.mkdir()
            (run_dir / "c.yaml").write_text("models:\n  - repo_id: bench/big\n")
            env["HF_HOME"] = str(run_dir / "hf")
            os.sync()  # each timed run starts with no dirty pages of the last one to write back
            t = time.perf_counter()
            p = subprocess.run(
                [sys.executable, str(PROJECT / "download.py"), "--config", "c.yaml", "-q"],
                cwd=run_dir,
                env=env,
                capture_output=True,
                text=True,
            )
            took = time.perf_counter() - t
            if p.returncode != 0:
                raise SystemExit(f"download failed: {p.stderr}")
            got = run_dir / "models" / "big" / "model.safetensors"
            if got.stat().st_size != size:  # a fast run of a short file is no measurement
                raise SystemExit(f"download wrote {got.stat().st_size} of {size} bytes")
            cli.append(size / took / 1e6)
            url_big = f"{url}/bench/big/resolve/{commit}/model.safetensors"
            took = timed(["curl", "-sSf", "-o", str(run_dir / "curl.bin"), url_big])
            curl.append(size / took / 1e6)
            if (run_dir / "curl.bin").stat().st_size != size:
                raise SystemExit("curl wrote a short file")
            helps.append(timed([sys.executable, str(PROJECT / "download.py"), "--help"]))
            run_fixed, run_hf = fixed_pairs(run_dir, env, FIXED_PAIRS)
            fixed += run_fixed
            hf_fixed += run_hf
            per_byte.append(size / max(size / cli[-1] / 1e6 - median(run_fixed), 1e-6) / 1e6)
            shutil.rmtree(run_dir)
        sim.stop()
        print(
            json.dumps(
                {
                    "size_mb": size / 1e6,
                    "cli_mb_s": cli,
                    "curl_mb_s": curl,
                    "help_s": helps,
                    "fixed_s": fixed,
                    "hf_fixed_s": hf_fixed,
                    "cli_per_byte_mb_s": per_byte,
                }
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
