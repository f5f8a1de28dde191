"""One token path for every command (hubtoken.py): finetune, align, export and generate load a
gated model from the Hub imitation with `--token-file` — and are refused without it. The
token never appears in what they print."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from test_download import CANARY
from tiny import preference_rows, sft_rows, write_jsonl

pytestmark = pytest.mark.integration

TRAIN = "training: {max_steps: 2, batch_size: 2, max_length: 48, logging_steps: 1, save_steps: 2}\n"


@pytest.fixture
def gated(hub, hub_env, tiny_model, tmp_path) -> dict:
    """The tiny model as a gated repo that only CANARY may read; a token file holding it."""
    files = {p.name: p for p in Path(tiny_model).iterdir() if p.is_file()}
    hub.add_repo("org/gated-tiny", files, gated=True, allowed_tokens={CANARY})
    (tmp_path / "token").write_text(CANARY + "\n")
    write_jsonl(tmp_path / "sft.jsonl", sft_rows(8))
    write_jsonl(tmp_path / "prefs.jsonl", preference_rows(8))
    (tmp_path / "sft.yaml").write_text(
        f"model: org/gated-tiny\ndataset: {{path: sft.jsonl}}\noutput_dir: out/sft\n{TRAIN}"
    )
    (tmp_path / "dpo.yaml").write_text(
        f"model: org/gated-tiny\ndataset: {{path: prefs.jsonl}}\noutput_dir: out/dpo\n{TRAIN}"
    )
    return dict(hub_env, HF_HUB_DISABLE_XET="1")


def test_every_command_is_authorised_by_token_file_and_refused_without(tmp_path, gated):
    tok = ("--token-file", str(tmp_path / "token"))
    commands = [
        ("finetune", "--config", "sft.yaml"),
        ("align", "--config", "dpo.yaml"),
        ("export", "--adapter", "out/sft", "--output", "out/merged"),
        ("generate", "--adapter", "out/sft", "--prompt", "the court", "--max-new-tokens", "2"),
    ]
    for cmd in commands:
        r = run_cli(*cmd, *tok, cwd=tmp_path, env=gated)
        assert r.code == 0, (cmd, r.output)
        assert CANARY not in r.output
    run = json.loads((tmp_path / "out/sft/run.json").read_text())
    assert run["base_model"] == "org/gated-tiny" and CANARY not in json.dumps(run)
    fresh = dict(gated, HF_HOME=str(tmp_path / "empty-cache"))
    for cmd in commands:
        if cmd[0] == "export":
            cmd = (*cmd, "--overwrite")
        r = run_cli(*cmd, cwd=tmp_path, env=fresh)
        assert r.code != 0, (cmd, r.output)
        assert "gated" in r.output.lower() or "401" in r.output, (cmd, r.output)
        assert "Traceback" not in r.output
