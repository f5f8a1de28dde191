"""Opt-in: the real Hugging Face Hub (`pytest -m hub`, needs HF_TOKEN and network). Never part
of CI: the default addopts deselect the `hub` marker."""

from __future__ import annotations

import json
import os

import pytest
from conftest import run_cli

pytestmark = pytest.mark.hub


@pytest.mark.skipif(
    not os.environ.get("HF_TOKEN"), reason="set HF_TOKEN to run tests against the real Hub"
)
def test_download_distilgpt2_config_and_tokenizer(tmp_path):
    (tmp_path / "downloads.yaml").write_text(
        "retries: 3\ntimeout_s: 30\nmodels:\n  - repo_id: distilbert/distilgpt2\n"
        "    allow_patterns: ['config.json', 'tokenizer.json', 'vocab.json', 'merges.txt']\n"
    )
    env = {"HF_TOKEN": os.environ["HF_TOKEN"], "HF_HOME": str(tmp_path / "hf")}
    r = run_cli("download", "--config", "downloads.yaml", cwd=tmp_path, env=env)
    assert r.code == 0, r.output
    local = tmp_path / "models/distilgpt2"
    assert json.loads((local / "config.json").read_text())["model_type"] == "gpt2"
    manifest = json.loads((local / "lexalign-manifest.json").read_text())
    assert len(manifest["commit"]) == 40 and {f["path"] for f in manifest["files"]} >= {
        "config.json",
        "tokenizer.json",
    }
    assert os.environ["HF_TOKEN"] not in r.output
    r = run_cli("download", "--config", "downloads.yaml", "--verify", cwd=tmp_path, env=env)
    assert r.code == 0, r.output
