"""Pure training helpers, and the finetune/align dry-run plan on a tiny model."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli, run_cli_here
from tiny import chat_rows, preference_rows, prompt_completion_rows, sft_rows, write_jsonl

from lexalign import train
from lexalign.errors import ConfigError


def test_target_modules_per_architecture():
    assert train.choose_target_modules("gpt2", "auto") == (["c_attn", "c_proj"], True)
    mods, fan = train.choose_target_modules("llama", "auto", ["model.layers.0.self_attn.q_proj"])
    assert mods == ["q_proj", "k_proj", "v_proj", "o_proj"] and fan is False
    assert train.choose_target_modules("mistral", "auto", None)[0] == [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
    ]
    assert train.choose_target_modules("weird", "auto", ["a.fc1"])[0] == "all-linear"
    assert train.choose_target_modules("gpt2", ["c_attn"], ["h.0.attn.c_attn"]) == (
        ["c_attn"],
        True,
    )
    with pytest.raises(ConfigError, match=r"\['q_proj'\] match no module"):
        train.choose_target_modules("gpt2", ["q_proj"], ["h.0.attn.c_attn"])


def test_checkpoints_only_complete_ones(tmp_path):
    from lexalign.train.outputs import COMPLETE_MARK, FINGERPRINT, mark_complete

    def files(d, state="{}", fmt=None):
        d.mkdir()
        for f in ("adapter_model.safetensors", "scheduler.pt"):
            (d / f).write_text("x")
        (d / "trainer_state.json").write_text(state)
        fp = {"kind": "finetune"} | ({"checkpoint_format": fmt} if fmt else {})
        (d / FINGERPRINT).write_text(json.dumps(fp))

    # written by this version: complete only with the mark, written last
    files(tmp_path / "checkpoint-5", fmt=2)
    mark_complete(tmp_path / "checkpoint-5", 5)
    files(tmp_path / "checkpoint-20", fmt=2)  # a save cut short before its mark
    files(tmp_path / "checkpoint-25", fmt=2)
    (tmp_path / "checkpoint-25" / COMPLETE_MARK).write_text('{"step": 30}')  # not its own
    # written before the mark existed: complete when every file is there and the state parses
    files(tmp_path / "checkpoint-10")
    files(tmp_path / "checkpoint-15", state='{"global_st')  # cut short mid-write
    (tmp_path / "checkpoint-30").mkdir()
    (tmp_path / "checkpoint-x").mkdir()
    assert [p.name for p in train.complete_checkpoints(tmp_path)] == [
        "checkpoint-5",
        "checkpoint-10",
    ]
    assert train.complete_checkpoints(tmp_path / "missing") == []


def test_fingerprint_differences_say_what_differs():
    a = {
        "kind": "finetune",
        "model": "m1",
        "model_config_sha256": "x",
        "lora": {"r": 8, "alpha": 16, "target_modules": ["c_attn"]},
        "adapter": None,
    }
    b = json.loads(json.dumps(a))
    assert train.fingerprint_differences(a, b) == []
    b["lora"]["r"] = 16
    b["model_config_sha256"] = "y"
    b["model"] = "m2"
    diffs = train.fingerprint_differences(a, b)
    assert "lora.r differs (8 vs 16)" in diffs and any("base model differs" in d for d in diffs)


def test_truncate_metrics_keeps_steps_once(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text(
        "".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in (1, 5, 10, 15)) + '{"step": 2'
    )
    train.truncate_metrics(p, 10)
    assert [json.loads(line)["step"] for line in p.read_text().splitlines()] == [1, 5, 10]


def _config(tmp_path, model, body: str) -> str:
    p = tmp_path / "c.yaml"
    p.write_text(f"model: {model}\noutput_dir: {tmp_path / 'out'}\n" + body)
    return str(p)


def test_finetune_dry_run_plan(tmp_path, tiny_model):
    data = write_jsonl(tmp_path / "sft.jsonl", sft_rows(40))
    cfg = _config(
        tmp_path,
        tiny_model,
        f"dataset: {{path: {data}}}\ntraining: {{max_steps: 7, batch_size: 3, gradient_accumulation_steps: 2, max_length: 12}}\n",
    )
    r = run_cli_here("finetune", "--config", cfg, "--dry-run", "--json", cwd=tmp_path)
    assert r.code == 0, r.output
    plan = next(json.loads(line) for line in r.stdout.splitlines() if '"plan"' in line)
    assert plan["rows"] == 40
    assert plan["effective_batch_size"] == 6 and plan["max_steps"] == 7
    assert plan["target_modules"] == ["c_attn", "c_proj"]
    # 2 layers: c_attn 64->192, attn.c_proj 64->64, mlp.c_proj 256->64, r=8
    assert plan["trainable_lora_parameters"] == 2 * 8 * ((64 + 192) + (64 + 64) + (256 + 64))
    assert plan["parameters"] > 100_000
    assert plan["truncated_rows"] > 0 and plan["max_tokens"] > 12
    assert not (tmp_path / "out").exists(), "a dry run writes nothing"


@pytest.mark.parametrize(
    "rows, dataset, expected",
    [
        (
            sft_rows(4),
            "{path: DATA, text_field: body}",
            "dataset.text_field: column 'body' is not in the dataset; its columns are: text",
        ),
        (
            prompt_completion_rows(4),
            "{path: DATA, prompt_field: prompt, completion_field: answer}",
            "column 'answer' is not in the dataset; its columns are: prompt, completion",
        ),
        (chat_rows(4), "{path: DATA, messages_field: conversation}", "column 'conversation'"),
    ],
)
def test_missing_field_lists_the_columns(tmp_path, tiny_model, rows, dataset, expected):
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    cfg = _config(tmp_path, tiny_model, f"dataset: {dataset.replace('DATA', str(data))}\n")
    r = run_cli_here("finetune", "--config", cfg, "--dry-run", cwd=tmp_path)
    assert r.code == 2, r.output
    assert expected in r.stderr and "Traceback" not in r.output


def test_align_missing_field_and_bad_paths(tmp_path, tiny_model):
    data = write_jsonl(tmp_path / "p.jsonl", preference_rows(4))
    cfg = _config(tmp_path, tiny_model, f"dataset: {{path: {data}, chosen_field: good}}\n")
    r = run_cli_here("align", "--config", cfg, "--dry-run", cwd=tmp_path)
    assert r.code == 2 and "column 'good' is not in the dataset" in r.stderr
    cfg = _config(tmp_path, tiny_model, "dataset: {path: nope/missing.jsonl}\n")
    r = run_cli_here("align", "--config", cfg, "--dry-run", cwd=tmp_path)
    assert r.code == 2 and "does not exist" in r.stderr
    cfg = _config(
        tmp_path, tiny_model, f"dataset: {{path: {data}}}\nadapter: {tmp_path}/no-adapter\n"
    )
    r = run_cli_here("align", "--config", cfg, "--dry-run", cwd=tmp_path)
    assert r.code == 2 and "no-adapter not found" in r.stderr
    (tmp_path / "empty-adapter").mkdir()
    cfg = _config(
        tmp_path, tiny_model, f"dataset: {{path: {data}}}\nadapter: {tmp_path}/empty-adapter\n"
    )
    r = run_cli_here("align", "--config", cfg, "--dry-run", cwd=tmp_path)
    assert r.code == 2 and "has no adapter_config.json" in r.stderr
    cfg = _config(tmp_path, tmp_path / "no-model", f"dataset: {{path: {data}}}\n")
    r = run_cli_here("align", "--config", cfg, "--dry-run", cwd=tmp_path)
    assert r.code == 2 and "run download first" in r.stderr
    (tmp_path / "not-a-model").mkdir()
    cfg = _config(tmp_path, tmp_path / "not-a-model", f"dataset: {{path: {data}}}\n")
    r = run_cli_here("align", "--config", cfg, "--dry-run", cwd=tmp_path)
    assert r.code == 2 and "has no config.json" in r.stderr


def test_quantization_on_cpu_is_a_config_error(tmp_path, tiny_model):
    data = write_jsonl(tmp_path / "sft.jsonl", sft_rows(4))
    cfg = _config(tmp_path, tiny_model, f"dataset: {{path: {data}}}\nquantization: 4bit\n")
    r = run_cli_here("finetune", "--config", cfg, cwd=tmp_path, env={"CUDA_VISIBLE_DEVICES": ""})
    assert r.code == 2, r.output
    assert "quantization: 4bit needs a CUDA GPU" in r.stderr


def test_resume_never_refuses_a_non_empty_output_dir(tmp_path, tiny_model):
    data = write_jsonl(tmp_path / "sft.jsonl", sft_rows(4))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "something").write_text("x")
    cfg = _config(tmp_path, tiny_model, f"dataset: {{path: {data}}}\nresume: never\n")
    r = run_cli_here("finetune", "--config", cfg, cwd=tmp_path)
    assert r.code == 2 and "--overwrite" in r.stderr
    assert (tmp_path / "out" / "something").exists()
    cfg = _config(
        tmp_path, tiny_model, f"dataset: {{path: {data}}}\nresume: {tmp_path}/out/checkpoint-3\n"
    )
    r = run_cli_here("finetune", "--config", cfg, cwd=tmp_path)
    assert r.code == 2 and "is not a checkpoint-N folder" in r.stderr


def test_dry_run_with_a_hub_dataset_id(tmp_path, tiny_model, hub, hub_env):
    body = "".join(json.dumps(r) + "\n" for r in sft_rows(12)).encode()
    hub.add_repo(
        "org/sft-data", {"data/train.jsonl": body, "README.md": b"# data\n"}, repo_type="dataset"
    )
    cfg = _config(tmp_path, tiny_model, "dataset: {path: org/sft-data, split: train}\n")
    # a subprocess: huggingface_hub reads HF_ENDPOINT when it is imported
    r = run_cli("finetune", "--config", cfg, "--dry-run", "--json", cwd=tmp_path, env=hub_env)
    assert r.code == 0, r.output
    plan = next(json.loads(line) for line in r.stdout.splitlines() if '"plan"' in line)
    assert plan["rows"] == 12
    assert hub.requests("GET", "/datasets/org/sft-data/resolve/"), (
        "the rows came from the Hub imitation"
    )


def test_dry_run_checks_the_output_folder_like_the_real_run(tmp_path, tiny_model):
    data = write_jsonl(tmp_path / "sft.jsonl", sft_rows(8))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("x")
    cfg = _config(tmp_path, tiny_model, f"dataset: {{path: {data}}}\nresume: never\n")
    r = run_cli_here("finetune", "--config", cfg, "--dry-run", cwd=tmp_path)
    assert r.code == 2 and "is not empty" in r.stderr and "--overwrite" in r.stderr, r.output
    r = run_cli_here(
        "finetune", "--config", cfg, "--dry-run", "--overwrite", "--json", cwd=tmp_path
    )
    assert r.code == 0, r.output
    plan = next(json.loads(line) for line in r.stdout.splitlines() if '"plan"' in line)
    assert "--overwrite would remove" in plan["start"], plan
    assert (tmp_path / "out" / "old.txt").exists(), "a dry run removes nothing"


def test_resume_values_are_checked_when_the_config_loads(tmp_path, tiny_model):
    data = write_jsonl(tmp_path / "sft.jsonl", sft_rows(4))
    cfg = _config(tmp_path, tiny_model, f"dataset: {{path: {data}}}\nresume: sometimes\n")
    r = run_cli_here("finetune", "--config", cfg, "--dry-run", cwd=tmp_path)
    assert r.code == 2, r.output
    assert "resume" in r.stderr and "not auto, never, or the path of a checkpoint-N" in r.stderr


def test_a_message_given_to_sys_exit_is_printed(tmp_path, tiny_model):
    data = write_jsonl(tmp_path / "sft.jsonl", sft_rows(4))
    cfg = _config(tmp_path, tiny_model, f"dataset: {{path: {data}}}\n")
    r = run_cli_here(
        "finetune", "--config", cfg, "--dry-run", cwd=tmp_path, env={"LEXALIGN_TESTING": "{"}
    )
    assert r.code == 1, r.output
    assert "LEXALIGN_TESTING is not a JSON object" in r.stderr, r.output


def test_relative_paths_in_a_config_elsewhere_are_relative_to_the_current_folder(
    tmp_path, tiny_model
):
    import shutil

    shutil.copytree(tiny_model, tmp_path / "models" / "tiny")
    write_jsonl(tmp_path / "data" / "sft.jsonl", sft_rows(8))
    (tmp_path / "configs" / "deep").mkdir(parents=True)
    cfg = tmp_path / "configs" / "deep" / "c.yaml"
    cfg.write_text("model: models/tiny\ndataset: {path: data/sft.jsonl}\noutput_dir: outputs/x\n")
    r = run_cli_here("finetune", "--config", "configs/deep/c.yaml", "--dry-run", cwd=tmp_path)
    assert r.code == 0, r.output
    cfg.write_text("model: models/none\ndataset: {path: data/sft.jsonl}\noutput_dir: outputs/x\n")
    r = run_cli_here("finetune", "--config", "configs/deep/c.yaml", "--dry-run", cwd=tmp_path)
    assert r.code == 2, r.output
    assert (
        str(tmp_path / "models" / "none") in r.stderr and f"current folder {tmp_path}" in r.stderr
    )
