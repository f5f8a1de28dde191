"""Shared fixtures: the local Hub imitation, running the real CLIs in a subprocess, and tiny
models built on the spot (random-init GPT-2 + a byte-level BPE tokenizer trained here)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# Hermetic: a developer's tracker settings (passed into dev containers by name) never reach
# the tests' runs; the tracker tests set their own.
for _name in [n for n in os.environ if n.startswith(("MLFLOW_", "WANDB_"))]:
    del os.environ[_name]

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
sys.path.insert(0, str(HERE))

from hubsim import HubSim  # noqa: E402


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(
    script: str, *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> Result:
    """Run `python <script>.py ARGS` (the real CLI) and capture everything."""
    full_env = dict(os.environ)
    full_env.pop("HF_TOKEN", None)
    full_env.update(env or {})
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    p = subprocess.run(
        [sys.executable, str(PROJECT / f"{script}.py"), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(p.returncode, p.stdout, p.stderr)


def run_cli_here(script: str, *args: str, cwd: Path, env: dict[str, str] | None = None) -> Result:
    """The same CLI run as run_cli, in this process (`lexalign.cli.main` with the script's
    command, in `cwd`, with `env`, stdout and stderr captured): for CLI behaviour where a
    subprocess is not the point — no interpreter start and no torch import per run. Whatever
    the run changes of the process (the working folder, the environment, signal handlers, test
    hooks, huggingface_hub's cached sessions and their pooled connections) is put back."""
    import contextlib
    import io
    import signal

    from lexalign import cli, testing

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_term = signal.getsignal(signal.SIGTERM)
    out, err = io.StringIO(), io.StringIO()
    try:
        _forget_sessions()
        os.environ.pop("HF_TOKEN", None)
        os.environ.update(env or {})
        testing._hooks.cache_clear()
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main([script, *args], prog_name=f"{script}.py")
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        testing._hooks.cache_clear()
        signal.signal(signal.SIGTERM, saved_term)
        _forget_sessions()
    return Result(code, out.getvalue(), err.getvalue())


def _forget_sessions() -> None:
    """Drop huggingface_hub's per-thread sessions, as a new process starts without them: a
    connection one run pooled must not carry a later run's request to another test's server."""
    import sys

    http = sys.modules.get("huggingface_hub.utils._http")
    if http is not None:
        http.reset_sessions()


@pytest.fixture
def hub():
    sim = HubSim()
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def hub_env(hub, tmp_path):
    """Environment that points huggingface_hub at the imitation, with a private HF_HOME."""
    return {
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A random-init GPT-2 (2 layers, 64 dims) and a BPE tokenizer trained on a few KB of text."""
    from tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-gpt2"))


OPT_IN = ("hub", "gpu")


def pytest_collection_modifyitems(config, items):
    """The real-Hub and GPU tests run only when the marker expression names them (`-m hub`,
    `-m gpu`): a plain `pytest tests/ -m "not integration"` (the design's usage) deselects them
    instead of failing on a machine without HF_TOKEN or CUDA."""
    expr = config.getoption("-m") or ""
    keep, drop = [], []
    for item in items:
        opted = [m for m in OPT_IN if item.get_closest_marker(m) and m not in expr]
        (drop if opted else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(params=["full-listing", "names-only-listing"])
def mirror(request, hub) -> str:
    """Run a download test against both answers a mirror may give: the Hub's full listing
    (sizes, LFS sha256, git blob ids) and a listing of file names only (what `?blobs=True`
    gives on some mirrors and proxies), where only the resolve answers' headers state a size
    or a hash."""
    hub.listing = "full" if request.param == "full-listing" else "names"
    return hub.listing
