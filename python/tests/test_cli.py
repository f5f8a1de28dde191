"""CLI surface: --help is fast and imports no torch; exit codes; lint."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import PROJECT


@pytest.mark.parametrize("script", ["download", "finetune", "align", "export", "generate"])
def test_help_imports_no_heavy_modules(script, tmp_path):
    code = (
        f"import sys, runpy; sys.argv = [{script + '.py'!r}, '--help']\n"
        f"try:\n    runpy.run_path({str(PROJECT / (script + '.py'))!r}, run_name='__main__')\n"
        "except SystemExit as e:\n    print('EXIT=' + str(e.code))\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets', 'huggingface_hub', 'pydantic',"
        " 'mlflow', 'wandb', 'deepspeed') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "Usage:" in p.stdout and "EXIT=0" in p.stdout, p.stdout[-300:]
    assert p.stdout.strip().endswith("HEAVY="), p.stdout[-300:]


def test_lexalign_entry_point_and_module(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "lexalign", "--help"], cwd=PROJECT, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    assert (
        p.returncode == 0
        and "download" in p.stdout
        and "finetune" in p.stdout
        and "align" in p.stdout
    )
    p = subprocess.run(
        [sys.executable, "-m", "lexalign", "download", "--help"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0 and "Usage: lexalign download" in p.stdout
    code = (
        "import sys, runpy; sys.argv = ['lexalign', 'sync-metrics', '--help']\n"
        "try:\n    runpy.run_module('lexalign', run_name='__main__')\n"
        "except SystemExit as e:\n    print('EXIT=' + str(e.code))\n"
        "print('HEAVY=' + ','.join(m for m in ('mlflow', 'wandb', 'torch') if m in sys.modules))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True)
    assert "Usage: lexalign sync-metrics" in p.stdout and "--to [mlflow]" in p.stdout, p.stderr
    assert p.stdout.strip().endswith("HEAVY="), p.stdout[-300:]


def test_download_dry_run_imports_no_torch(tmp_path, hub, hub_env):
    hub.add_repo("org/x", {"config.json": b"{}"})
    cfg = tmp_path / "c.yaml"
    cfg.write_text("models:\n  - repo_id: org/x\n")
    # said by an atexit handler: a download ends its own process once they have run (startup.py)
    code = (
        "import atexit, sys, runpy\n"
        "atexit.register(lambda: print('TORCH=' + str('torch' in sys.modules\n"
        "                                             or 'transformers' in sys.modules)))\n"
        f"sys.argv = ['download.py', '--config', {str(cfg)!r}, '--dry-run']\n"
        f"runpy.run_path({str(PROJECT / 'download.py')!r}, run_name='__main__')\n"
    )

    env = dict(os.environ, **hub_env)
    p = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "TORCH=False" in p.stdout, p.stdout + p.stderr


def test_ruff_is_clean():
    for args in (["check", "."], ["format", "--check", "."]):
        p = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "--no-cache"],
            cwd=PROJECT,
            capture_output=True,
            text=True,
        )
        assert p.returncode == 0, p.stdout + p.stderr
