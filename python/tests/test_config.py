"""Config errors: file, key path, what is wrong, the fix; exit 2; no traceback."""

from __future__ import annotations

import pytest
from conftest import run_cli_here

from lexalign.config import AlignConfig, DownloadConfig, FinetuneConfig, load_config, parse_config
from lexalign.errors import ConfigError


def err(data, model=DownloadConfig) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, model, "c.yaml")
    assert info.value.exit_code == 2
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("c.yaml: ")
    return msg


GOOD = {"models": [{"repo_id": "org/name"}]}


def test_defaults():
    cfg = parse_config(GOOD, DownloadConfig, "c.yaml")
    assert (
        cfg.output_dir == "models"
        and cfg.retries == 5
        and cfg.timeout_s == 60
        and cfg.deadline_s == 3600
    )
    assert cfg.local_dir_for(cfg.models[0], "models").endswith("models/name")


@pytest.mark.parametrize(
    "data, expected",
    [
        (
            {"models": [{"repo_id": "a/b", "alow_patterns": ["*"]}]},
            "models[0].alow_patterns: unknown key; did you mean 'allow_patterns'?",
        ),
        ({"modles": [{"repo_id": "a/b"}]}, "modles: unknown key; did you mean 'models'?"),
        (
            {"models": [{"repo_id": "a/b"}, {"repo_id": "c/d", "allow_patterns": "x"}]},
            "models[1].allow_patterns: Input should be a valid list",
        ),
        (
            {"models": [{"repo_id": "a/b", "allow_patterns": []}]},
            "models[0].allow_patterns: is empty",
        ),
        ({"models": [], "datasets": []}, "models and datasets are both empty"),
        (
            {"models": [{"repo_id": "not a repo"}]},
            "models[0].repo_id: 'not a repo' is not a Hub repo id",
        ),
        ({"models": [{"repo_id": "a/b/c"}]}, "is not a Hub repo id"),
        ({"models": [{"repo_id": "a--b"}]}, "is not a Hub repo id"),
        (
            {"models": [{"repo_id": "a/b"}], "retries": -1},
            "retries: Input should be greater than or equal to 0 (got -1)",
        ),
        (
            {"models": [{"repo_id": "a/b"}], "timeout_s": "soon"},
            "timeout_s: Input should be a valid number",
        ),
        (
            {"models": [{"repo_id": "a/b"}], "deadline_s": 0},
            "deadline_s: Input should be greater than 0",
        ),
        ({"models": [{}]}, "models[0].repo_id: required key is missing"),
        (
            {"models": [{"repo_id": "a/b", "revision": "has space"}]},
            "models[0].revision: revision must be",
        ),
        ({"models": [{"repo_id": "a/b"}, {"repo_id": "c/b"}]}, "download into the same folder"),
        ({"models": "a/b"}, "models: Input should be a valid list"),
    ],
)
def test_download_config_errors(data, expected):
    assert expected in err(data)


def test_yaml_syntax_error_has_line_and_column(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text('models:\n  - repo_id: a/b\n    allow_patterns: ["*.json"\n')
    with pytest.raises(ConfigError) as info:
        load_config(p, DownloadConfig)
    msg = str(info.value)
    assert msg.startswith(f"{p}:") and "invalid YAML" in msg
    line, col = msg[len(str(p)) + 1 :].split(":")[:2]
    assert int(line) >= 3 and int(col) >= 1


def test_missing_and_empty_and_non_mapping_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml", DownloadConfig)
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(ConfigError, match="the file is empty"):
        load_config(tmp_path / "empty.yaml", DownloadConfig)
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(tmp_path / "list.yaml", DownloadConfig)


SFT = {"model": "m", "dataset": {"path": "d.jsonl"}}


def test_finetune_defaults_and_formats():
    cfg = parse_config(SFT, FinetuneConfig, "f.yaml")
    assert cfg.dataset.format == "text" and cfg.dataset.text_field == "text"
    assert cfg.output_dir == "outputs/sft" and cfg.quantization == "none" and cfg.resume == "auto"
    cfg = parse_config(
        {"model": "m", "dataset": {"path": "d", "prompt_field": "p", "completion_field": "c"}},
        FinetuneConfig,
        "f",
    )
    assert cfg.dataset.format == "prompt_completion"
    cfg = parse_config(
        {"model": "m", "dataset": {"path": "d", "messages_field": "messages"}}, FinetuneConfig, "f"
    )
    assert cfg.dataset.format == "messages"


@pytest.mark.parametrize(
    "data, expected",
    [
        ({**SFT, "lora": {"r": 0}}, "lora.r: Input should be greater than or equal to 1"),
        ({**SFT, "lora": {"rank": 8}}, "lora.rank: unknown key"),
        (
            {**SFT, "training": {"max_step": 3}},
            "training.max_step: unknown key; did you mean 'max_steps'?",
        ),
        ({**SFT, "training": {"learning_rate": -1}}, "training.learning_rate"),
        ({**SFT, "quantization": "3bit"}, "quantization: Input should be 'none', '4bit' or '8bit'"),
        (
            {**SFT, "dataset": {"path": "d", "prompt_field": "p"}},
            "prompt_field and completion_field go together",
        ),
        (
            {**SFT, "dataset": {"path": "d", "text_field": "t", "messages_field": "m"}},
            "set exactly one format",
        ),
        ({"dataset": {"path": "d"}}, "model: required key is missing"),
        ({**SFT, "lora": {"target_modules": []}}, "lora.target_modules"),
    ],
)
def test_finetune_config_errors(data, expected):
    assert expected in err(data, FinetuneConfig)


def test_align_config():
    cfg = parse_config(
        {"model": "m", "dataset": {"path": "p.jsonl"}, "adapter": "outputs/sft"}, AlignConfig, "a"
    )
    assert cfg.method == "dpo" and cfg.beta == 0.1 and cfg.dataset.chosen_field == "chosen"
    assert "method: Input should be 'dpo'" in err(
        {"model": "m", "dataset": {"path": "p"}, "method": "ppo"}, AlignConfig
    )
    assert "beta: Input should be greater than 0" in err(
        {"model": "m", "dataset": {"path": "p"}, "beta": 0}, AlignConfig
    )


def test_shipped_example_configs_are_valid():
    from conftest import PROJECT

    load_config(PROJECT / "config/downloads.yaml", DownloadConfig)
    load_config(PROJECT / "config/finetune.yaml", FinetuneConfig)
    load_config(PROJECT / "config/align.yaml", AlignConfig)


@pytest.mark.parametrize("script", ["download", "finetune", "align"])
def test_cli_config_error_exit_2_without_traceback(script, tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("bogus_key: 1\n")
    r = run_cli_here(script, "--config", str(p), cwd=tmp_path)
    assert r.code == 2, r.output
    assert "Traceback" not in r.output
    assert "bogus_key: unknown key" in r.stderr
    assert r.stderr.count("\n") == 1


def test_cli_usage_error_exit_2(tmp_path):
    r = run_cli_here("download", "--no-such-flag", cwd=tmp_path)
    assert r.code == 2 and "No such option" in r.stderr
    r = run_cli_here("download", cwd=tmp_path)
    assert r.code == 2 and "--config" in r.stderr
