"""Evaluation, export and generate for real on a tiny model (CPU, fp32): eval rows and the
best-step checkpoint, eval rows once across a resume, loss.svg, TensorBoard event files,
packing, a merged export that plain transformers loads with the logits of base+adapter, and
generate on both."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import run_cli
from tiny import preference_rows, sft_rows, write_jsonl

pytestmark = pytest.mark.integration


def rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def config(tmp_path: Path, name: str, body: str) -> str:
    p = tmp_path / f"{name}.yaml"
    p.write_text(body)
    return str(p)


def sft(tmp_path, model, out, dataset, steps, extra_training=""):
    return config(
        tmp_path,
        out.name,
        f"model: {model}\noutput_dir: {out}\ndataset: {dataset}\nlora: {{r: 8, alpha: 16, dropout: 0.0}}\n"
        f"training: {{max_steps: {steps}, learning_rate: 5.0e-3, batch_size: 4, max_length: 64, "
        f"logging_steps: 1, save_steps: 5, eval_steps: 4, seed: 7{extra_training}}}\n",
    )


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_model):
    tmp = tmp_path_factory.mktemp("eval")
    data = write_jsonl(tmp / "sft.jsonl", sft_rows(64))
    out = tmp / "sft"
    cfg = sft(
        tmp,
        tiny_model,
        out,
        f"{{path: {data}, eval_fraction: 0.25}}",
        10,
        ", save_total_limit: 1, report_to: tensorboard",
    )
    r = run_cli("finetune", "--config", cfg, cwd=tmp)
    assert r.code == 0, r.output
    return out, r


def test_eval_rows_best_checkpoint_and_summary(evaluated):
    out, r = evaluated
    m = rows(out)
    evals = [x for x in m if "eval_loss" in x]
    # every eval_steps (4, 8) and once more for the final adapter (10), each once
    assert [x["step"] for x in evals] == [4, 8, 10]
    assert [x["step"] for x in m if "loss" in x] == list(range(1, 11))
    run = json.loads((out / "run.json").read_text())
    best = min(evals, key=lambda x: x["eval_loss"])
    assert run["eval"]["first_loss"] == evals[0]["eval_loss"]
    assert run["eval"]["last_loss"] == evals[-1]["eval_loss"]
    assert (run["eval"]["best_loss"], run["eval"]["best_step"]) == (best["eval_loss"], best["step"])
    # save_total_limit: 1 keeps the last checkpoint and, beside it, the best one
    assert (out / f"checkpoint-{best['step']}" / "adapter_model.safetensors").is_file()
    assert run["best_checkpoint"] == str(out / f"checkpoint-{best['step']}")
    assert (out / "checkpoint-10").is_dir()
    assert "best" in r.output and "loss.svg" in r.output
    env = run["environment"]
    assert {"image_id", "image_digest", "lock_sha256", "torch", "cuda", "machine"} == set(env)
    assert env["torch"].startswith("2.6.0")


def test_loss_svg_and_tensorboard_events(evaluated):
    out, _ = evaluated
    root = ET.fromstring((out / "loss.svg").read_text())
    classes = {p.get("class") for p in root.iter("{http://www.w3.org/2000/svg}polyline")}
    assert classes == {"train-loss", "eval-loss"}
    events = list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    assert b"eval/loss" in events[0].read_bytes() and b"train/loss" in events[0].read_bytes()


def test_export_loads_with_plain_transformers_and_matches_base_plus_adapter(evaluated, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from lexalign.inference import load

    out, _ = evaluated
    export = tmp_path / "merged"
    r = run_cli("export", "--adapter", str(out), "--output", str(export), cwd=tmp_path)
    assert r.code == 0, r.output
    names = {p.name for p in export.iterdir()}
    assert {"config.json", "generation_config.json", "tokenizer.json", "README.md"} <= names
    assert any(n.endswith(".safetensors") for n in names)
    assert not any(n.startswith("adapter_") for n in names)
    card = (export / "README.md").read_text()
    assert "learning_rate" in card and "torch" in card
    merged = AutoModelForCausalLM.from_pretrained(export).eval()
    assert merged.dtype == torch.float32
    model, tok = load(out)
    ids = tok("the court agrees because the clause", return_tensors="pt")
    with torch.no_grad():
        diff = (merged(**ids).logits - model(**ids).logits).abs().max().item()
    assert diff <= 1e-4
    # base alone differs: the adapter really is in the export
    base = AutoModelForCausalLM.from_pretrained(
        json.loads((out / "run.json").read_text())["base_model"]
    )
    with torch.no_grad():
        assert (base(**ids).logits - merged(**ids).logits).abs().max().item() > 1e-4
    # an existing export needs --overwrite, and is then replaced whole
    r = run_cli("export", "--adapter", str(out), "--output", str(export), cwd=tmp_path)
    assert r.code == 2
    r = run_cli(
        "export", "--adapter", str(out), "--output", str(export), "--overwrite", cwd=tmp_path
    )
    assert r.code == 0, r.output
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".merged")]

    a = run_cli(
        "generate",
        "--model",
        str(export),
        "--prompt",
        "the court",
        "--max-new-tokens",
        "6",
        "--json",
        cwd=tmp_path,
    )
    b = run_cli(
        "generate",
        "--adapter",
        str(out),
        "--prompt",
        "the court",
        "--max-new-tokens",
        "6",
        "--json",
        cwd=tmp_path,
    )
    assert a.code == 0 and b.code == 0, a.output + b.output
    ca = json.loads(a.stdout.strip().splitlines()[-1])["completion"]
    cb = json.loads(b.stdout.strip().splitlines()[-1])["completion"]
    assert ca == cb, "greedy decoding of the export equals base+adapter"


def test_eval_rows_once_across_resume(tmp_path, tiny_model):
    data = write_jsonl(tmp_path / "sft.jsonl", sft_rows(48))
    out = tmp_path / "resumed"
    ds = f"{{path: {data}, eval_fraction: 0.2}}"
    assert (
        run_cli("finetune", "--config", sft(tmp_path, tiny_model, out, ds, 8), cwd=tmp_path).code
        == 0
    )
    r = run_cli("finetune", "--config", sft(tmp_path, tiny_model, out, ds, 16), cwd=tmp_path)
    assert r.code == 0, r.output
    run = json.loads((out / "run.json").read_text())
    assert run["resumed_from_step"] == 8
    m = rows(out)
    assert [x["step"] for x in m if "eval_loss" in x] == [4, 8, 12, 16]
    assert [x["step"] for x in m if "loss" in x] == list(range(1, 17))
    first = next(x for x in m if "eval_loss" in x)
    assert run["eval"]["evaluations"] == 4 and run["eval"]["first_loss"] == first["eval_loss"]


def test_align_with_eval_path_logs_dpo_eval_metrics_and_exports(tmp_path, tiny_model):
    data = write_jsonl(tmp_path / "train.jsonl", preference_rows(40))
    held = write_jsonl(tmp_path / "held.jsonl", preference_rows(48)[40:])
    out = tmp_path / "dpo"
    cfg = config(
        tmp_path,
        "dpo",
        f"model: {tiny_model}\noutput_dir: {out}\ndataset: {{path: {data}, eval_path: {held}}}\n"
        "training: {max_steps: 4, learning_rate: 5.0e-3, batch_size: 4, max_length: 64, logging_steps: 1, "
        "save_steps: 4, eval_steps: 2, seed: 7}\n",
    )
    r = run_cli("align", "--config", cfg, cwd=tmp_path)
    assert r.code == 0, r.output
    evals = [x for x in rows(out) if "eval_loss" in x]
    assert [x["step"] for x in evals] == [2, 4]
    assert all("eval_rewards/accuracies" in x and "eval_rewards/margins" in x for x in evals)
    r = run_cli("export", "--adapter", str(out), "--output", str(tmp_path / "m"), cwd=tmp_path)
    assert r.code == 0, r.output


def test_packing_trains_on_more_real_tokens_per_step(tmp_path, tiny_model):
    data = write_jsonl(tmp_path / "sft.jsonl", sft_rows(64))
    runs = {}
    for packing in (False, True):
        out = tmp_path / f"p{int(packing)}"
        cfg = sft(
            tmp_path, tiny_model, out, f"{{path: {data}}}", 4, f", packing: {str(packing).lower()}"
        )
        r = run_cli("finetune", "--config", cfg, cwd=tmp_path)
        assert r.code == 0, r.output
        runs[packing] = rows(out)
    # packed: several examples per row of max_length, so each step sees more real tokens
    assert runs[True][-1]["num_tokens"] > 2 * runs[False][-1]["num_tokens"]
