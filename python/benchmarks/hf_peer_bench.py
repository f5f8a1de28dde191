"""Download speed against huggingface_hub's own CLI (`hf download`, 8 workers) on the same
throttled Hub imitation — every connection limited to --rate-mb-s, as a CDN connection is:

- sharded: a repo of --shards files of --shard-mb each (a sharded model), connections at
  --rate-mb-s;
- large: one file of --large-mb, connections at --large-rate-mb-s: the CLI fetches it as
  ranged parts on up to `max_connections_per_file` (default 8) connections, `hf download` (Xet
  off) on one.

Prints one JSON object: {"sharded_cli_s", "sharded_hf_s", "large_cli_s", "large_hf_s", ...}
(seconds per run, each run into a fresh folder). Run in the dev container:
`cargo xtask run -- python benchmarks/hf_peer_bench.py`."""

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


def blob(path: Path, mb: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        for _ in range(mb):
            f.write(os.urandom(1_000_000))
    return path


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{p.stderr[-2000:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--shard-mb", type=int, default=25)
    ap.add_argument("--large-mb", type=int, default=200)
    ap.add_argument("--rate-mb-s", type=float, default=25)
    ap.add_argument("--large-rate-mb-s", type=float, default=10)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lexalign-hf-peer-"))
    hf = shutil.which("hf") or str(Path(sys.executable).with_name("hf"))
    try:
        sim = HubSim()
        rates = {"sharded": args.rate_mb_s * 1e6, "large": args.large_rate_mb_s * 1e6}
        shards = {
            f"model-{i + 1:05d}-of-{args.shards:05d}.safetensors": blob(
                work / "serve" / "sharded" / f"{i}.bin", args.shard_mb
            )
            for i in range(args.shards)
        }
        repos = {
            "sharded": sim.add_repo("bench/sharded", shards),
            "large": sim.add_repo(
                "bench/large",
                {"model.safetensors": blob(work / "serve" / "large.bin", args.large_mb)},
            ),
        }
        for repo in repos.values():
            for name in repo.files:
                sim.hashes(repo, name)  # hash once, outside the timings
        url = sim.start()
        env = dict(
            os.environ, HF_ENDPOINT=url, HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1"
        )
        env.pop("HF_TOKEN", None)
        out: dict[str, list[float]] = {}
        for kind, repo in repos.items():
            sim.rate_bytes_per_s = rates[kind]
            for i in range(args.runs):
                run = work / f"{kind}{i}"
                run.mkdir()
                (run / "c.yaml").write_text(f"models:\n  - repo_id: {repo.repo_id}\n")
                env["HF_HOME"] = str(run / "hf-cli")
                out.setdefault(f"{kind}_cli_s", []).append(
                    timed(
                        [sys.executable, str(PROJECT / "download.py"), "-c", "c.yaml", "-q"],
                        run,
                        env,
                    )
                )
                env["HF_HOME"] = str(run / "hf-peer")
                out.setdefault(f"{kind}_hf_s", []).append(
                    timed(
                        [
                            hf,
                            "download",
                            repo.repo_id,
                            "--local-dir",
                            str(run / "peer"),
                            "--max-workers",
                            "8",
                            "--quiet",
                        ],
                        run,
                        env,
                    )
                )
                shutil.rmtree(run)
        print(
            json.dumps(
                {
                    "shards": args.shards,
                    "shard_mb": args.shard_mb,
                    "large_mb": args.large_mb,
                    "rate_mb_s": args.rate_mb_s,
                    "large_rate_mb_s": args.large_rate_mb_s,
                    **out,
                }
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
