"""`preview` on a thousand chat rows: the whole CLI run (`python -m lexalign preview`, which builds
every row as finetune does: template rendering with markers, tokenizing with offsets, the
masks), next to its floor measured in the same run: the same rows through
`apply_chat_template(tokenize=True)` alone (what tokenizing without masks costs). A tiny ChatML
tokenizer with a default system prompt; three user/assistant turns per row. Prints one JSON
object. Run in the dev container: `cargo xtask run -- python benchmarks/preview_bench.py`."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
sys.path.insert(0, str(PROJECT / "tests"))

from chat_families import FAMILIES, build_tokenizer, conversation  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lexalign-preview-bench-"))
    family = next(f for f in FAMILIES if f.name == "chatml-qwen")
    tok = build_tokenizer(family, work / "model")
    (work / "model" / "config.json").write_text('{"model_type": "qwen2"}')
    rows = [{"messages": conversation(i % 2 == 0)} for i in range(args.rows)]
    (work / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (work / "c.yaml").write_text(
        f"model: {work / 'model'}\ndataset: {{path: chat.jsonl, messages_field: messages}}\n"
        "output_dir: out\n"
    )
    env = dict(os.environ, PYTHONPATH=str(PROJECT))
    cli, floor = [], []
    for _ in range(args.runs):
        t = time.perf_counter()
        p = subprocess.run(
            [sys.executable, "-m", "lexalign", "preview", "--config", "c.yaml", "--json"],
            cwd=work, env=env, capture_output=True, text=True,
        )  # fmt: skip
        cli.append(time.perf_counter() - t)
        if p.returncode != 0:
            raise SystemExit(f"preview failed: {p.stderr}")
        doc = json.loads(p.stdout)
        if doc["rows_total"] != args.rows or doc["rows_dropped"]:
            raise SystemExit(f"preview saw {doc['rows_total']} rows, dropped {doc['rows_dropped']}")
        t = time.perf_counter()
        for r in rows:
            tok.apply_chat_template(r["messages"], tokenize=True)
        floor.append(time.perf_counter() - t)
    print(json.dumps({"rows": args.rows, "cli_s": cli, "template_tokenize_s": floor}))


if __name__ == "__main__":
    main()
