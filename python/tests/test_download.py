"""The download CLI against the local Hub imitation: real huggingface_hub code, real HTTP."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PROJECT, run_cli_here

# Token-shaped test values, assembled so that no token-shaped literal sits in the source.
CANARY = "hf_" + "CanaryTokenValue0123456789abcdefXYZ"


def rnd(n: int, seed: int = 0) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


MODEL_FILES = {
    "config.json": b'{"model_type": "gpt2"}',
    "tokenizer.json": b'{"version": "1.0"}',
    "model.safetensors": rnd(300_000),
    "README.md": b"# tiny\n",
    "extra/notes.txt": b"notes",
}


def write_config(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "downloads.yaml"
    p.write_text(body)
    return p


def dl(tmp_path, hub_env, *args, env=None, config=None):
    e = dict(hub_env)
    e.update(env or {})
    return run_cli_here(
        "download",
        "--config",
        str(config or tmp_path / "downloads.yaml"),
        *args,
        cwd=tmp_path,
        env=e,
    )


def start_download(tmp_path: Path, hub_env: dict, *args: str) -> subprocess.Popen:
    """`download.py --config downloads.yaml ARGS` in the background (for signals, two runs)."""
    env = dict(os.environ, **hub_env, PYTHONUNBUFFERED="1")
    env.pop("HF_TOKEN", None)
    return subprocess.Popen(
        [sys.executable, str(PROJECT / "download.py"), "--config", "downloads.yaml", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def model_repo(hub):
    return hub.add_repo("org/tiny", MODEL_FILES)


def test_model_and_dataset_happy_path(tmp_path, hub, hub_env, model_repo):
    hub.add_repo(
        "org/data",
        {"train.jsonl": b'{"text": "a"}\n', "test.jsonl": b'{"text": "b"}\n'},
        repo_type="dataset",
    )
    write_config(
        tmp_path,
        "models:\n  - repo_id: org/tiny\ndatasets:\n  - repo_id: org/data\n    local_dir: data/org\n",
    )
    r = dl(tmp_path, hub_env)
    assert r.code == 0, r.output
    for name, data in MODEL_FILES.items():
        assert (tmp_path / "models/tiny" / name).read_bytes() == data
    assert (tmp_path / "data/org/train.jsonl").read_bytes() == b'{"text": "a"}\n'
    manifest = json.loads((tmp_path / "models/tiny/lexalign-manifest.json").read_text())
    assert manifest["repo_id"] == "org/tiny" and manifest["repo_type"] == "model"
    assert manifest["revision"] == "main" and manifest["commit"] == model_repo.revisions["main"]
    by_path = {f["path"]: f for f in manifest["files"]}
    assert set(by_path) == set(MODEL_FILES)
    assert (
        by_path["model.safetensors"]["sha256"]
        == hashlib.sha256(MODEL_FILES["model.safetensors"]).hexdigest()
    )
    assert by_path["model.safetensors"]["size"] == 300_000
    ds = json.loads((tmp_path / "data/org/lexalign-manifest.json").read_text())
    assert ds["repo_type"] == "dataset"
    # no leftovers that look like complete files
    assert not list((tmp_path / "models/tiny").rglob("*.incomplete"))


def test_patterns_and_revision(tmp_path, hub, hub_env):
    hub.add_repo("org/rev", MODEL_FILES, revisions={"main": "a" * 40, "v1": "b" * 40})
    write_config(
        tmp_path,
        "models:\n  - repo_id: org/rev\n    revision: v1\n    allow_patterns: ['*.json', '*.safetensors']\n    ignore_patterns: ['tokenizer.*']\n",
    )
    r = dl(tmp_path, hub_env)
    assert r.code == 0, r.output
    got = sorted(p.name for p in (tmp_path / "models/rev").iterdir() if p.is_file())
    assert got == ["config.json", "lexalign-manifest.json", "model.safetensors"]
    manifest = json.loads((tmp_path / "models/rev/lexalign-manifest.json").read_text())
    assert manifest["revision"] == "v1" and manifest["commit"] == "b" * 40
    assert all("/resolve/" + "b" * 40 + "/" in p for _, p, _ in hub.requests("GET", "/resolve/"))


def test_second_run_is_served_locally_without_file_requests(tmp_path, hub, hub_env, model_repo):
    write_config(tmp_path, "models:\n  - repo_id: org/tiny\n")
    assert dl(tmp_path, hub_env).code == 0
    hub.log.clear()
    r = dl(tmp_path, hub_env, "--json")
    assert r.code == 0, r.output
    assert hub.requests("GET", "/resolve/") == [] and hub.requests("HEAD") == []
    events = [json.loads(line) for line in r.stdout.splitlines()]
    done = [e for e in events if e["event"] == "file_done"]
    assert len(done) == len(MODEL_FILES) and all(e["cached"] for e in done)


def test_offline_mode_uses_the_manifest(tmp_path, hub, hub_env, model_repo):
    write_config(tmp_path, "models:\n  - repo_id: org/tiny\n")
    assert dl(tmp_path, hub_env).code == 0
    hub.log.clear()
    r = dl(tmp_path, hub_env, env={"HF_HUB_OFFLINE": "1"})
    assert r.code == 0, r.output
    assert hub.log == []
    r = dl(tmp_path, hub_env, "--dry-run", env={"HF_HUB_OFFLINE": "1"})
    assert r.code == 0 and "dry-run (offline)" in r.stdout
    # offline without a local copy fails clearly
    write_config(tmp_path, "models:\n  - repo_id: org/other\n")
    r = dl(tmp_path, hub_env, env={"HF_HUB_OFFLINE": "1"})
    assert r.code == 1 and "run once online" in r.stderr


def test_dry_run_resolves_and_writes_nothing(tmp_path, hub, hub_env, model_repo):
    write_config(tmp_path, "models:\n  - repo_id: org/tiny\n    allow_patterns: ['*.json']\n")
    r = dl(tmp_path, hub_env, "--dry-run")
    assert r.code == 0, r.output
    assert "main → " + model_repo.revisions["main"][:12] in r.stdout
    assert "total" in r.stdout
    assert not (tmp_path / "models").exists()
    assert hub.requests("GET", "/resolve/") == []


@pytest.mark.parametrize(
    "fault",
    [
        dict(where="get", kind="drop", path="model.safetensors", after_bytes=120_000, times=2),
        dict(where="get", kind="drop", path="config.json", after_bytes=5, times=1),
        dict(where="get", kind="status", status=503, path="model.safetensors", times=2),
        dict(where="get", kind="status", status=429, retry_after=0.3, path="config.json"),
        dict(where="get", kind="status", status=500, times=1),
        dict(where="api", kind="status", status=502, times=2),
        dict(where="api", kind="drop", times=1),
        dict(where="api", kind="slow", seconds=4, times=1),
    ],
    ids=[
        "drop-mid-body",
        "drop-small-file",
        "get-503",
        "429-retry-after",
        "get-500",
        "api-502",
        "api-connection-drop",
        "api-slow",
    ],
)
def test_transient_faults_recover_within_budget(tmp_path, hub, hub_env, model_repo, fault, mirror):
    hub.add_fault(**fault)
    write_config(tmp_path, "retries: 3\ntimeout_s: 2\nmodels:\n  - repo_id: org/tiny\n")
    r = dl(tmp_path, hub_env)
    assert r.code == 0, r.output
    assert "retry 1/3" in r.stderr
    assert (tmp_path / "models/tiny/model.safetensors").read_bytes() == MODEL_FILES[
        "model.safetensors"
    ]


CHUNK = 10 * 1024 * 1024  # huggingface_hub writes what it reads in chunks of this size


def test_connection_drop_resumes_from_the_partial_file(tmp_path, hub, hub_env, mirror):
    big = rnd(CHUNK + 2_000_000, seed=3)
    hub.add_repo("org/big", {"model.safetensors": big})
    hub.add_fault(where="get", kind="drop", path="model.safetensors", after_bytes=CHUNK + 500_000)
    write_config(tmp_path, "retries: 2\nmodels:\n  - repo_id: org/big\n")
    r = dl(tmp_path, hub_env)
    assert r.code == 0, r.output
    assert "retry 1/2" in r.stderr
    assert (tmp_path / "models/big/model.safetensors").read_bytes() == big
    ranges = [rng for _, _, rng in hub.requests("GET", "model.safetensors") if rng]
    assert ranges == [f"bytes={CHUNK + 500_000}-"], "resumes at the exact byte it stopped"


def test_stall_mid_body_times_out_and_resumes(tmp_path, hub, hub_env, model_repo, mirror):
    hub.add_fault(
        where="get", kind="stall", path="model.safetensors", after_bytes=50_000, seconds=6
    )
    write_config(tmp_path, "retries: 2\ntimeout_s: 1\nmodels:\n  - repo_id: org/tiny\n")
    r = dl(tmp_path, hub_env)
    assert r.code == 0, r.output
    assert (tmp_path / "models/tiny/model.safetensors").read_bytes() == MODEL_FILES[
        "model.safetensors"
    ]


def test_faults_past_the_budget_fail_with_exit_1(tmp_path, hub, hub_env, model_repo, mirror):
    hub.add_fault(where="get", kind="status", status=503, path="model.safetensors", times=10)
    hub.add_repo("org/fine", {"config.json": b"{}"})
    write_config(
        tmp_path,
        "retries: 2\ntimeout_s: 2\nmodels:\n  - repo_id: org/tiny\n  - repo_id: org/fine\n",
    )
    r = dl(tmp_path, hub_env)
    assert r.code == 1
    assert "gave up after 3 attempt(s)" in r.stderr and "model.safetensors" in r.stderr
    # the other repo still completed, the failed one has no manifest and no complete-looking file
    assert (tmp_path / "models/fine/lexalign-manifest.json").exists()
    assert not (tmp_path / "models/tiny/lexalign-manifest.json").exists()
    assert not (tmp_path / "models/tiny/model.safetensors").exists()
    assert "Traceback" not in r.output


def test_missing_repo_revision_and_no_retry(tmp_path, hub, hub_env, model_repo):
    write_config(tmp_path, "models:\n  - repo_id: org/nope\n")
    r = dl(tmp_path, hub_env)
    assert r.code == 1 and "model repo org/nope not found" in r.stderr and "retry" not in r.stderr
    write_config(tmp_path, "models:\n  - repo_id: org/tiny\n    revision: nobranch\n")
    r = dl(tmp_path, hub_env)
    assert r.code == 1 and "revision 'nobranch' not found" in r.stderr and "retry" not in r.stderr
    write_config(tmp_path, "datasets:\n  - repo_id: org/tiny\n")
    r = dl(tmp_path, hub_env)
    assert r.code == 1 and "dataset repo org/tiny not found" in r.stderr


def test_gated_without_token_and_token_without_access(tmp_path, hub, hub_env):
    good = "hf_" + "GoodToken0123456789abcdefghijklmnop"
    hub.add_repo("org/gated", MODEL_FILES, gated=True, allowed_tokens={good})
    write_config(tmp_path, "models:\n  - repo_id: org/gated\n")
    r = dl(tmp_path, hub_env)
    assert r.code == 1 and "is gated and no token was sent" in r.stderr
    r = dl(tmp_path, hub_env, env={"HF_TOKEN": CANARY})
    assert (
        r.code == 1 and "your token has no access" in r.stderr and "accept the licence" in r.stderr
    )
    assert CANARY not in r.output
    r = dl(tmp_path, hub_env, env={"HF_TOKEN": good})
    assert r.code == 0, r.output
    assert good not in r.output


def test_token_file_and_token_never_printed(tmp_path, hub, hub_env):
    hub.add_repo("org/gated", MODEL_FILES, gated=True, allowed_tokens={CANARY})
    tf = tmp_path / "token"
    tf.write_text(CANARY + "\n")
    write_config(tmp_path, "models:\n  - repo_id: org/gated\n")
    r = dl(tmp_path, hub_env, "--token-file", str(tf), "--json")
    assert r.code == 0, r.output
    assert CANARY not in r.output
    tf.write_text("")
    r = dl(tmp_path, hub_env, "--token-file", str(tf))
    assert r.code == 2 and "has no token on its first line" in r.stderr


def test_deadline(tmp_path, hub, hub_env, model_repo):
    hub.add_fault(where="api", kind="status", status=503, retry_after=5, times=5)
    write_config(
        tmp_path, "retries: 5\ntimeout_s: 1\ndeadline_s: 2\nmodels:\n  - repo_id: org/tiny\n"
    )
    started = time.monotonic()
    r = dl(tmp_path, hub_env)
    assert r.code == 1 and "deadline_s=2 " in r.stderr
    assert time.monotonic() - started < 15


def test_verify_detects_a_flipped_byte(tmp_path, hub, hub_env, model_repo):
    write_config(tmp_path, "models:\n  - repo_id: org/tiny\n")
    assert dl(tmp_path, hub_env).code == 0
    r = dl(tmp_path, hub_env, "--verify")
    assert r.code == 0, r.output
    p = tmp_path / "models/tiny/model.safetensors"
    data = bytearray(p.read_bytes())
    data[1234] ^= 0x01
    p.write_bytes(bytes(data))
    hub.log.clear()
    r = dl(tmp_path, hub_env, "--verify", env={"HF_HUB_OFFLINE": "1"})
    assert r.code == 1 and "model.safetensors: sha256" in r.stderr
    assert hub.log == []


def test_json_events(tmp_path, hub, hub_env, model_repo):
    write_config(tmp_path, "models:\n  - repo_id: org/tiny\n")
    r = dl(tmp_path, hub_env, "--json")
    assert r.code == 0
    kinds = [json.loads(line)["event"] for line in r.stdout.splitlines()]
    assert kinds[0] == "start" and kinds[-1] == "summary"
    assert "file_done" in kinds and "repo_done" in kinds
    r = dl(tmp_path, hub_env, "--quiet")
    assert r.code == 0 and "org/tiny" in r.stdout and "summary" not in r.stdout


def test_corrupt_file_from_server_is_refetched_then_fails(
    tmp_path, hub, hub_env, monkeypatch, mirror
):
    repo = hub.add_repo("org/bad", {"model.safetensors": rnd(5000)})
    # the API publishes one sha256, the file server sends other bytes of the same size
    hub.hashes(repo, "model.safetensors")
    repo.files["model.safetensors"] = rnd(5000, seed=9)
    write_config(tmp_path, "retries: 1\nmodels:\n  - repo_id: org/bad\n")
    r = dl(tmp_path, hub_env)
    assert r.code == 1 and "integrity check" in r.stderr
    assert not (tmp_path / "models/bad/model.safetensors").exists()


@pytest.mark.integration
def test_ctrl_c_mid_download_then_resume(tmp_path, hub, hub_env):
    big = rnd(CHUNK + 3_000_000, seed=5)
    hub.add_repo("org/big", {"model.safetensors": big})
    hub.add_fault(
        where="get",
        kind="stall",
        path="model.safetensors",
        after_bytes=CHUNK + 1_000_000,
        seconds=30,
    )
    write_config(tmp_path, "timeout_s: 60\nmodels:\n  - repo_id: org/big\n")
    proc = start_download(tmp_path, hub_env)
    incomplete = []
    for _ in range(200):
        incomplete = [
            p for p in (tmp_path / "models/big").rglob("*.incomplete") if p.stat().st_size >= CHUNK
        ]
        if incomplete:
            break
        time.sleep(0.05)
    assert incomplete, "the download never reached the stall"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert not (tmp_path / "models/big/model.safetensors").exists()
    hub.clear_faults()
    hub.log.clear()
    r = dl(tmp_path, hub_env)
    assert r.code == 0, r.output
    assert (tmp_path / "models/big/model.safetensors").read_bytes() == big
    ranges = [rng for _, _, rng in hub.requests("GET", "model.safetensors") if rng]
    assert len(ranges) == 1 and int(ranges[0][6:-1]) >= CHUNK, ranges
