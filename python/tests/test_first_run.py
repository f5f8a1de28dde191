"""The README's first run, command for command: the `cargo xtask run -- …` lines of its "First
run" block (copied below) run here, with the shipped configs and sample data, against the local Hub imitation
serving a tiny GPT-2 as distilbert/distilgpt2. Keeps the README, the configs and the data
honest together."""

from __future__ import annotations

import json
import shlex
import shutil

import pytest
from conftest import PROJECT, run_cli

pytestmark = pytest.mark.integration

# The "First run" block of README.md, verbatim (xtask/src/docs_check.rs checks they agree; the
# container running this test sees only python/).
FIRST_RUN = """
cargo xtask run -- python download.py --config config/downloads.yaml
cargo xtask run -- python finetune.py --config config/finetune.yaml
cargo xtask run -- python align.py --config config/align.yaml
cargo xtask run -- python export.py --adapter outputs/dpo --output outputs/merged
cargo xtask run -- python generate.py --model outputs/merged --prompt "Question: What is a lease?"
"""


def first_run_commands() -> list[list[str]]:
    return [
        shlex.split(line.removeprefix("cargo xtask run --"))
        for line in FIRST_RUN.strip().splitlines()
    ]


def test_readme_first_run_with_shipped_configs_and_data(tmp_path, hub, hub_env):
    from tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny", n_positions=1024)
    hub.add_repo(
        "distilbert/distilgpt2", {p.name: p.read_bytes() for p in model.iterdir() if p.is_file()}
    )
    work = tmp_path / "work"
    shutil.copytree(PROJECT / "config", work / "config")
    shutil.copytree(PROJECT / "data", work / "data")
    for cmd in first_run_commands():
        script, args = cmd[1].removesuffix(".py"), cmd[2:]
        r = run_cli(script, *args, cwd=work, env=hub_env, timeout=600)
        assert r.code == 0, f"{' '.join(cmd)}:\n{r.output[-3000:]}"
    run = json.loads((work / "outputs/sft/run.json").read_text())
    assert run["status"] == "completed" and run["eval"]["evaluations"] >= 2
    assert (work / "outputs/sft/loss.svg").is_file()
    dpo = json.loads((work / "outputs/dpo/run.json").read_text())
    assert dpo["base_adapter"] and dpo["eval"]
    assert (work / "outputs/merged/config.json").is_file()
