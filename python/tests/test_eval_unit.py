"""Evaluation config, the eval summary, loss.svg, the first-run model check, and the bad input
of export/generate: fast checks that load no weights."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET

import pytest
from conftest import run_cli, run_cli_here
from tiny import preference_rows, sft_rows, write_jsonl

from lexalign.config import FinetuneConfig, parse_config
from lexalign.errors import ConfigError
from lexalign.plot import loss_svg
from lexalign.train.outputs import eval_summary

SVG = "{http://www.w3.org/2000/svg}"


def _cfg(dataset: dict, **training) -> dict:
    return {"model": "m", "dataset": dataset, "training": training}


@pytest.mark.parametrize(
    "dataset, expected",
    [
        ({"path": "d", "eval_fraction": 0.0}, "must be in (0, 0.5]"),
        ({"path": "d", "eval_fraction": 0.6}, "must be in (0, 0.5]"),
        ({"path": "d", "eval_fraction": 0.1, "eval_path": "e"}, "set one evaluation source"),
        ({"path": "d", "eval_split": "train"}, "is the training split"),
        ({"path": "d", "eval_path": " "}, "is empty"),
    ],
)
def test_eval_config_errors(dataset, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        parse_config(_cfg(dataset), FinetuneConfig, "c.yaml")


def test_eval_config_defaults():
    cfg = parse_config(_cfg({"path": "d", "eval_fraction": 0.5}), FinetuneConfig, "c.yaml")
    assert cfg.dataset.has_eval and cfg.training.eval_steps is None
    assert cfg.training.report_to == [] and cfg.training.packing is False
    cfg = parse_config(_cfg({"path": "d"}, eval_steps=3), FinetuneConfig, "c.yaml")
    assert not cfg.dataset.has_eval and cfg.training.eval_steps == 3
    with pytest.raises(
        ConfigError, match="report_to.*unknown tracker 'comet'.*tensorboard, mlflow, wandb"
    ):
        parse_config(_cfg({"path": "d"}, report_to="comet"), FinetuneConfig, "c.yaml")
    for given, want in [
        ("none", []),
        ("tensorboard", ["tensorboard"]),
        (["wandb", "mlflow", "wandb"], ["wandb", "mlflow"]),
        ([], []),
    ]:
        cfg = parse_config(_cfg({"path": "d"}, report_to=given), FinetuneConfig, "c.yaml")
        assert cfg.training.report_to == want


def test_eval_summary_first_best_last():
    rows = [
        {"step": 1, "loss": 3.0},
        {"step": 2, "eval_loss": 2.5},
        {"step": 4, "eval_loss": 2.0},
        {"step": 4, "loss": 2.2},
        {"step": 6, "eval_loss": 2.1},
    ]
    assert eval_summary(rows) == {
        "first_loss": 2.5,
        "best_loss": 2.0,
        "best_step": 4,
        "last_loss": 2.1,
        "evaluations": 3,
    }
    assert eval_summary([{"step": 1, "loss": 1.0}]) is None


def test_loss_svg_draws_both_curves_in_the_plot_area():
    rows = [{"step": s, "loss": 5 - s * 0.1} for s in range(1, 11)]
    rows += [{"step": s, "eval_loss": 5.2 - s * 0.05} for s in (5, 10)]
    root = ET.fromstring(loss_svg(rows, "t <&>"))
    lines = {p.get("class"): p.get("points").split() for p in root.iter(f"{SVG}polyline")}
    assert set(lines) == {"train-loss", "eval-loss"}
    assert len(lines["train-loss"]) == 10 and len(lines["eval-loss"]) == 2
    xs = [float(p.split(",")[0]) for p in lines["train-loss"]]
    ys = [float(p.split(",")[1]) for p in lines["train-loss"]]
    assert xs == sorted(xs) and ys == sorted(ys), "steps go right, falling loss goes down"
    assert all(64 <= x <= 696 for x in xs) and all(40 <= y <= 352 for y in ys)
    # No rows at all still gives a valid SVG that says so.
    assert "no loss logged yet" in loss_svg([])
    ET.fromstring(loss_svg([{"step": 3, "loss": 1.0}]))


def _write(tmp_path, body: str) -> str:
    p = tmp_path / "c.yaml"
    p.write_text(body)
    return str(p)


def test_first_run_model_not_downloaded_fails_fast_without_network(tmp_path):
    """The shipped config before any download: exit 2 at once, no Hub retries."""
    data = write_jsonl(tmp_path / "data" / "sft.jsonl", sft_rows(4))
    cfg = _write(tmp_path, f"model: models/distilgpt2\ndataset: {{path: {data}}}\n")
    t0 = time.monotonic()
    r = run_cli_here(
        "finetune",
        "--config",
        cfg,
        "--dry-run",
        cwd=tmp_path,
        env={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_ETAG_TIMEOUT": "30"},
    )
    assert r.code == 2, r.output
    assert "models/distilgpt2 not found — run download first" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert time.monotonic() - t0 < 10
    cfg = _write(
        tmp_path,
        f"model: ./base\nadapter: outputs/sft\ndataset: {{path: {data}}}\n",
    )
    r = run_cli_here("align", "--config", cfg, "--dry-run", cwd=tmp_path)
    assert r.code == 2 and "./base not found — run download first" in r.stderr


def test_hub_error_is_one_line_with_a_fix(tmp_path):
    data = write_jsonl(tmp_path / "sft.jsonl", sft_rows(4))
    cfg = _write(tmp_path, f"model: someone/some-model\ndataset: {{path: {data}}}\n")
    # a subprocess: huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE when it is imported
    r = run_cli(
        "finetune",
        "--config",
        cfg,
        "--dry-run",
        cwd=tmp_path,
        env={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "1"},
    )
    assert r.code == 2, r.output
    assert "cannot load someone/some-model" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "MaxRetryError" not in r.stderr and "Traceback" not in r.output


@pytest.mark.parametrize(
    "body, expected",
    [
        ("eval_split: test", "single file, which has no splits"),
        ("eval_path: nope.jsonl", "does not exist"),
    ],
)
def test_bad_eval_sources_exit_2(tmp_path, tiny_model, body, expected):
    data = write_jsonl(tmp_path / "p.jsonl", preference_rows(8))
    cfg = _write(
        tmp_path,
        f"model: {tiny_model}\noutput_dir: {tmp_path / 'out'}\ndataset: {{path: {data}, {body}}}\n",
    )
    r = run_cli_here("align", "--config", cfg, "--dry-run", cwd=tmp_path)
    assert r.code == 2 and expected in r.stderr, r.output


def test_eval_split_of_a_folder_and_dry_run_sizes(tmp_path, tiny_model):
    write_jsonl(tmp_path / "d" / "train.jsonl", sft_rows(30))
    write_jsonl(tmp_path / "d" / "validation.jsonl", sft_rows(6))
    cfg = _write(
        tmp_path,
        f"model: {tiny_model}\noutput_dir: {tmp_path / 'out'}\n"
        f"dataset: {{path: {tmp_path / 'd'}, eval_split: validation}}\ntraining: {{save_steps: 7}}\n",
    )
    r = run_cli_here("finetune", "--config", cfg, "--dry-run", "--json", cwd=tmp_path)
    assert r.code == 0, r.output
    plan = next(json.loads(x) for x in r.stdout.splitlines() if '"plan"' in x)
    assert (plan["rows"], plan["eval_rows"], plan["eval_steps"]) == (30, 6, 7)
    r = run_cli_here("finetune", "--config", cfg, "--dry-run", cwd=tmp_path)
    assert "6 rows from eval_split validation" in r.stdout
    # eval_fraction: a seeded hold-out of the training rows
    cfg = _write(
        tmp_path,
        f"model: {tiny_model}\noutput_dir: {tmp_path / 'out'}\n"
        f"dataset: {{path: {tmp_path / 'd' / 'train.jsonl'}, eval_fraction: 0.2}}\n",
    )
    r = run_cli_here("finetune", "--config", cfg, "--dry-run", "--json", cwd=tmp_path)
    plan = next(json.loads(x) for x in r.stdout.splitlines() if '"plan"' in x)
    assert (plan["rows"], plan["eval_rows"]) == (24, 6)
    assert not (tmp_path / "out").exists()


def test_export_and_generate_bad_input_exit_2_and_write_nothing(tmp_path, tiny_model):
    r = run_cli_here("export", "--adapter", str(tmp_path / "none"), "--output", "x", cwd=tmp_path)
    assert r.code == 2 and "not found" in r.stderr
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": str(tmp_path / "gone")})
    )
    r = run_cli_here("export", "--adapter", str(adapter), "--output", "x", cwd=tmp_path)
    assert r.code == 2 and "gone not found — run download first" in r.stderr
    assert "--base" in r.stderr
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    r = run_cli_here(
        "export",
        "--adapter",
        str(adapter),
        "--output",
        str(busy),
        "--base",
        str(tiny_model),
        cwd=tmp_path,
    )
    assert r.code == 2 and "--overwrite" in r.stderr
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    assert not (tmp_path / "x").exists()
    r = run_cli_here("generate", "--prompt", "hi", cwd=tmp_path)
    assert r.code == 2 and "exactly one of --model" in r.stderr
    r = run_cli_here("generate", "--model", "./nope", "--prompt", "hi", cwd=tmp_path)
    assert r.code == 2 and "run download first" in r.stderr


def test_packed_rows_do_not_attend_across_example_boundaries(tiny_model):
    """What training.packing relies on without flash-attention: trl's padding-free batches carry
    position_ids that restart per example, and transformers builds a block-diagonal causal mask
    from them (trl calls the model with use_cache=False, as here), so each example's logits
    equal those of the example alone."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    a = torch.tensor([[5, 9, 17, 3, 8]])
    b = torch.tensor([[11, 4, 7]])
    packed = torch.cat([a, b], dim=1)
    positions = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2]])
    with torch.no_grad():
        together = model(input_ids=packed, position_ids=positions, use_cache=False).logits
        alone_b = model(input_ids=b).logits
        alone_a = model(input_ids=a).logits
    assert torch.allclose(together[:, 5:], alone_b, atol=1e-5)
    assert torch.allclose(together[:, :5], alone_a, atol=1e-5)
