"""Chat data trained for real on a tiny Llama with a ChatML template: assistant-only loss by
default (and what `preview` shows is what trained), rows without a trained token dropped and
counted, packing that keeps the masks (same first loss as padded batches), conversational
and ShareGPT preference pairs for DPO, and the shipped ShareGPT/Alpaca samples through the
chain finetune → align → export → generate."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT, run_cli
from tiny import build_tiny_llama, chat_rows, write_jsonl

pytestmark = pytest.mark.integration

EOT = "<|im_end|>"


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def multi_turn(n: int) -> list[dict]:
    rows = []
    for i, r in enumerate(chat_rows(n)):
        q = r["messages"][0]["content"]
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": "answer law questions."},
                    {"role": "user", "content": q},
                    {"role": "assistant", "content": "helpful polite answer."},
                    {"role": "user", "content": f"and the clause {i}"},
                    {"role": "assistant", "content": "the term is good."},
                ]
            }
        )
    return rows


def config(tmp_path: Path, llama: Path, name: str, dataset: str, training: str) -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(
        f"model: {llama}\ndataset: {dataset}\noutput_dir: out/{name}\n"
        "lora: {r: 8, alpha: 16, dropout: 0.0}\n"
        f"training: {{learning_rate: 5.0e-3, logging_steps: 1, save_steps: 50, seed: 3, {training}}}\n"
    )
    return p


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def preview(cfg: Path, *args: str) -> dict:
    """`python -m lexalign preview --config CFG --json ARGS` (the documented command)."""
    env = dict(os.environ, PYTHONPATH=str(PROJECT))
    p = subprocess.run(
        [sys.executable, "-m", "lexalign", "preview", "--config", str(cfg), "--json", *args],
        cwd=cfg.parent, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout)


def trained_text(tok, ids: list[int], labels: list[int]) -> list[str]:
    runs, cur = [], []
    for t, label in zip(ids, labels, strict=True):
        if label != -100:
            assert label == t
            cur.append(t)
        elif cur:
            runs.append(tok.decode(cur))
            cur = []
    return runs + ([tok.decode(cur)] if cur else [])


def test_chat_finetune_trains_only_assistant_tokens_and_drops_rows_without_any(tmp_path, llama):
    from transformers import AutoTokenizer

    rows = multi_turn(16) + [{"messages": [{"role": "user", "content": "only a question"}]}]
    write_jsonl(tmp_path / "chat.jsonl", rows)
    cfg = config(
        tmp_path, llama, "sft", "{path: chat.jsonl, messages_field: messages}",
        "max_steps: 8, batch_size: 4, max_length: 128",
    )  # fmt: skip
    shown = preview(cfg, "--rows", "all")
    assert shown["rows_total"] == 17 and shown["rows_dropped"] == 1
    assert [r["index"] for r in shown["rows"]] == list(range(16))
    tok = AutoTokenizer.from_pretrained(llama)
    for r in shown["rows"]:
        assert trained_text(tok, r["input_ids"], r["labels"]) == [
            "helpful polite answer." + EOT,
            "the term is good." + EOT,
        ]
    assert shown["tokens_trained"] == sum(
        sum(x != -100 for x in r["labels"]) for r in shown["rows"]
    )
    r = run_cli("finetune", "--config", str(cfg), cwd=tmp_path)
    assert r.code == 0, r.output
    losses = [m["loss"] for m in metrics(tmp_path / "out/sft")]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0], losses
    run = json.loads((tmp_path / "out/sft/run.json").read_text())
    assert run["data"]["loss_on"] == "assistant"
    assert run["data"]["rows_dropped"] == 1 and run["data"]["dropped"] == {"no assistant turn": 1}
    assert run["data"]["tokens_trained"] == shown["tokens_trained"]
    assert "no assistant turn" in r.stderr + r.stdout


def test_packing_keeps_the_masks_and_gives_the_padded_first_loss(tmp_path, llama):
    write_jsonl(tmp_path / "chat.jsonl", multi_turn(4))
    first = {}
    for packing in ("false", "true"):
        cfg = config(
            tmp_path, llama, f"p{packing}", "{path: chat.jsonl, messages_field: messages}",
            f"max_steps: 1, batch_size: 4, max_length: 128, packing: {packing}",
        )  # fmt: skip
        r = run_cli("finetune", "--config", str(cfg), cwd=tmp_path)
        assert r.code == 0, r.output
        first[packing] = metrics(tmp_path / f"out/p{packing}")[0]["loss"]
    assert abs(first["true"] - first["false"]) < 1e-5, first


def test_dry_run_reports_the_trained_share_and_all_dropped_is_exit_2(tmp_path, llama):
    write_jsonl(tmp_path / "chat.jsonl", multi_turn(4))
    cfg = config(
        tmp_path, llama, "d", "{path: chat.jsonl, messages_field: messages}", "max_length: 128"
    )
    r = run_cli("finetune", "--config", str(cfg), "--dry-run", "--json", cwd=tmp_path)
    assert r.code == 0, r.output
    plan = next(e for e in map(json.loads, r.stdout.splitlines()) if e["event"] == "plan")
    assert plan["loss_on"] == "assistant" and 0 < plan["trained_share"] < 0.5
    r = run_cli("finetune", "--config", str(cfg), "--dry-run", cwd=tmp_path)
    assert "trained" in r.stdout and "%" in r.stdout
    short = config(
        tmp_path, llama, "s", "{path: chat.jsonl, messages_field: messages}", "max_length: 8"
    )
    r = run_cli("finetune", "--config", str(short), cwd=tmp_path)
    assert r.code == 2, r.output
    assert "every row" in r.stderr and "cut off by max_length" in r.stderr
    assert not (tmp_path / "out/s").exists()


def test_bad_loss_on_and_format_exit_2_naming_the_key(tmp_path, llama):
    write_jsonl(tmp_path / "t.jsonl", [{"text": "the court"}])
    for dataset, training, key in (
        ("{path: t.jsonl}", "loss_on: assistant", "training.loss_on"),
        ("{path: t.jsonl}", "loss_on: sometimes", "training.loss_on"),
        ("{path: t.jsonl, format: sharegpt}", "max_steps: 1", "dataset.format"),
    ):
        cfg = config(tmp_path, llama, "b", dataset, training)
        r = run_cli("finetune", "--config", str(cfg), cwd=tmp_path)
        assert r.code == 2 and key in r.stderr, r.output
        assert len(r.stderr.strip().splitlines()) == 1


def test_shipped_sharegpt_and_alpaca_samples_run_the_chain_to_generate(tmp_path, llama):
    from transformers import AutoTokenizer

    for name in ("sharegpt.jsonl", "alpaca.jsonl", "preferences_sharegpt.jsonl"):
        shutil.copy(PROJECT / "data" / name, tmp_path / name)
    steps = "max_steps: 2, batch_size: 2, max_length: 256"
    sft = config(
        tmp_path, llama, "sft", "{path: sharegpt.jsonl, messages_field: conversations}", steps
    )
    alpaca = config(tmp_path, llama, "alpaca", "{path: alpaca.jsonl, format: alpaca}", steps)
    dpo = tmp_path / "dpo.yaml"
    dpo.write_text(
        f"model: {llama}\nadapter: out/sft\ndataset: {{path: preferences_sharegpt.jsonl}}\n"
        f"output_dir: out/dpo\ntraining: {{logging_steps: 1, save_steps: 50, {steps}}}\n"
    )
    tok = AutoTokenizer.from_pretrained(llama)
    row = json.loads((tmp_path / "preferences_sharegpt.jsonl").read_text().splitlines()[0])
    pair = preview(dpo, "--rows", "1")["rows"][0]
    assert trained_text(tok, pair["input_ids"], pair["labels"]) == [row["chosen"][0]["value"] + EOT]
    assert trained_text(tok, pair["rejected"]["input_ids"], pair["rejected"]["labels"]) == [
        row["rejected"][0]["value"] + EOT
    ]
    first = json.loads((tmp_path / "alpaca.jsonl").read_text().splitlines()[0])
    shown = preview(alpaca, "--rows", "1")["rows"][0]
    assert trained_text(tok, shown["input_ids"], shown["labels"]) == [first["output"] + EOT]
    for cli, cfg in (("finetune", alpaca), ("finetune", sft), ("align", dpo)):
        r = run_cli(cli, "--config", str(cfg), cwd=tmp_path)
        assert r.code == 0, r.output
        assert all(math.isfinite(m["loss"]) for m in metrics(tmp_path / "out" / cfg.stem))
    r = run_cli("export", "--adapter", "out/dpo", "--output", "out/merged", cwd=tmp_path)
    assert r.code == 0, r.output
    r = run_cli(
        "generate", "--model", "out/merged", "--prompt", "What is a contract?",
        "--max-new-tokens", "4", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert r.code == 0, r.output
