"""The download CLI against a hostile or broken mirror (the Hub imitation's hostile faults):
unsafe file names, endless and dripping bodies, a deadline during a transfer, partial files
that lie, a rerun after a failed --verify, damaged manifests, secrets echoed back, OSErrors
per repo, strict configs, and network errors a user can act on."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
from test_download import MODEL_FILES, dl, rnd, write_config

MANIFEST = "lexalign-manifest.json"


def outside_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "bad",
    [
        "a/../../escaped.json",
        "/tmp/absolute.json",
        "dir\\evil.json",
        ".cache/lexalign/x.json",
        "lexalign-manifest.json",
        "a//b.json",
        "./c.json",
    ],
)
def test_unsafe_names_fail_the_repo_and_touch_nothing_outside(tmp_path, hub, hub_env, bad):
    hub.add_repo("org/evil", {"config.json": b"{}", bad: b'{"x": 1}'})
    hub.add_repo("org/fine", {"config.json": b"{}"})
    write_config(tmp_path, "models:\n  - repo_id: org/evil\n  - repo_id: org/fine\n")
    before = outside_files(tmp_path)
    r = dl(tmp_path, hub_env, "--json")
    assert r.code == 1, r.output
    assert f"{bad!r}" in r.stderr and "refusing it" in r.stderr, r.stderr
    after = outside_files(tmp_path)
    new = after - before
    assert all(n.startswith("models/fine/") or n.startswith("hf-home/") for n in new), new
    assert not Path("/tmp/absolute.json").exists()
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["event"] == "summary" and (summary["ok"], summary["failed"]) == (1, 1)


def test_a_symlinked_subfolder_pointing_outside_is_refused(tmp_path, hub, hub_env):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    (tmp_path / "models" / "tiny" / "extra").symlink_to(outside)
    hub.add_repo("org/tiny", MODEL_FILES)
    write_config(tmp_path, "models:\n  - repo_id: org/tiny\n")
    r = dl(tmp_path, hub_env)
    assert r.code == 1 and "outside" in r.stderr, r.output
    assert list(outside.iterdir()) == []


def test_an_endless_body_is_cut_at_the_announced_size(tmp_path, hub, hub_env, mirror):
    hub.add_repo("org/tiny", {"model.safetensors": rnd(5_000)})
    hub.add_fault(where="get", kind="endless", path="model.safetensors", times=10)
    write_config(tmp_path, "retries: 1\nmodels:\n  - repo_id: org/tiny\n")
    t0 = time.monotonic()
    r = dl(tmp_path, hub_env)
    assert r.code == 1, r.output
    assert "more than the 5000 bytes it announced" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 30
    leftovers = [p for p in (tmp_path / "models/tiny").rglob("*") if p.is_file()]
    assert leftovers == [], "the oversized partial is removed"


def test_deadline_cuts_a_dripping_transfer(tmp_path, hub, hub_env, mirror):
    hub.add_repo("org/tiny", {"model.safetensors": rnd(100_000)})
    hub.add_fault(where="get", kind="drip", path="model.safetensors", seconds=0.5, times=10)
    write_config(tmp_path, "deadline_s: 4\ntimeout_s: 60\nmodels:\n  - repo_id: org/tiny\n")
    t0 = time.monotonic()
    r = dl(tmp_path, hub_env)
    took = time.monotonic() - t0
    assert r.code == 1, r.output
    assert "deadline_s=4 exceeded while downloading model.safetensors" in r.stderr, r.stderr
    assert took < 4 + 10, took


def test_a_stall_is_cut_at_timeout_s(tmp_path, hub, hub_env, mirror):
    hub.add_repo("org/tiny", {"model.safetensors": rnd(100_000)})
    hub.add_fault(where="get", kind="drip", path="model.safetensors", seconds=30, times=10)
    write_config(tmp_path, "retries: 0\ntimeout_s: 2\nmodels:\n  - repo_id: org/tiny\n")
    t0 = time.monotonic()
    r = dl(tmp_path, hub_env)
    assert r.code == 1 and "timed out" in r.stderr, r.output
    assert time.monotonic() - t0 < 20


def test_a_partial_larger_than_the_file_is_discarded(tmp_path, hub, hub_env, mirror):
    data = rnd(50_000, seed=9)
    hub.add_repo("org/tiny", {"model.safetensors": data})
    write_config(tmp_path, "models:\n  - repo_id: org/tiny\n")
    from lexalign.download.fetch import partial_path

    part = partial_path(tmp_path / "models/tiny", "model.safetensors")
    part.parent.mkdir(parents=True)
    part.write_bytes(rnd(80_000, seed=1))
    r = dl(tmp_path, hub_env)
    assert r.code == 0, r.output
    assert (tmp_path / "models/tiny/model.safetensors").read_bytes() == data
    assert [rng for _, _, rng in hub.requests("GET", "model.safetensors") if rng] == []


def test_a_rerun_after_a_failed_verify_repairs_the_file(tmp_path, hub, hub_env):
    hub.add_repo("org/tiny", MODEL_FILES)
    write_config(tmp_path, "models:\n  - repo_id: org/tiny\n")
    assert dl(tmp_path, hub_env).code == 0
    target = tmp_path / "models/tiny/model.safetensors"
    damaged = bytearray(target.read_bytes())
    damaged[100] ^= 0xFF
    target.write_bytes(bytes(damaged))
    r = dl(tmp_path, hub_env, "--verify")
    assert r.code == 1 and "running download again fetches them afresh" in r.stderr, r.output
    hub.log.clear()
    r = dl(tmp_path, hub_env)
    assert r.code == 0, r.output
    assert target.read_bytes() == MODEL_FILES["model.safetensors"]
    fetched = [p for _, p, _ in hub.requests("GET") if "/resolve/" in p]
    assert fetched and all(p.endswith("/model.safetensors") for p in fetched), fetched
    assert dl(tmp_path, hub_env, "--verify").code == 0


@pytest.mark.parametrize(
    "damage",
    [
        {"files": 5},
        {"commit": 7},
        {"files": [{"path": "config.json", "sha256": "0" * 64}]},
        "not json at all {",
    ],
)
def test_a_damaged_manifest_is_not_trusted_but_good_files_are_kept(tmp_path, hub, hub_env, damage):
    hub.add_repo("org/tiny", MODEL_FILES)
    write_config(tmp_path, "models:\n  - repo_id: org/tiny\n")
    assert dl(tmp_path, hub_env).code == 0
    m = tmp_path / "models/tiny" / MANIFEST
    if isinstance(damage, str):
        m.write_text(damage)
    else:
        data = json.loads(m.read_text())
        data.update(damage)
        m.write_text(json.dumps(data))
    (tmp_path / "models/tiny/README.md").write_bytes(b"changed\n")
    hub.log.clear()
    for extra in ((), ("--verify",)):
        r = dl(tmp_path, hub_env, *extra)
        if extra:
            assert r.code == 0, r.output
            continue
        assert r.code == 0, r.output
        assert "not trusting it" in r.stderr and "Traceback" not in r.output
        fetched = [p for _, p, _ in hub.requests("GET") if "/resolve/" in p]
        assert [p.rsplit("/", 1)[1] for p in fetched] == ["README.md"], fetched
    assert (tmp_path / "models/tiny/README.md").read_bytes() == MODEL_FILES["README.md"]
    for what in (("--verify",), ()):
        m.write_text('{"files": 5}')
        r = dl(tmp_path, hub_env, *what, env={"HF_HUB_OFFLINE": "1"} if not what else None)
        assert "unexpected" not in r.stderr and "Traceback" not in r.output, r.output


def test_tokens_from_files_and_urls_never_printed(tmp_path, hub, hub_env):
    secret = "plain-token-without-prefix_0123456789"
    second = "second-line-secret-9876543210"
    tf = tmp_path / "token"
    tf.write_bytes(("\ufeff" + secret + "\n" + second + "\n").encode("utf-8"))
    hub.add_repo("org/tiny", MODEL_FILES)
    hub.add_fault(where="api", kind="echo", status=400, times=5)
    write_config(tmp_path, "retries: 0\nmodels:\n  - repo_id: org/tiny\n")
    for mode in ((), ("--json",), ("--debug",)):
        r = dl(tmp_path, hub_env, "--token-file", str(tf), *mode)
        assert r.code == 1, r.output
        assert "rejected credentials" in r.output, r.output
        assert secret not in r.output and second not in r.output, r.output
    # a password in HF_ENDPOINT
    env = dict(hub_env, HF_ENDPOINT=hub.url.replace("http://", "http://user:s3cr3t-pass@"))
    r = dl(tmp_path, hub_env, "--json", env=env)
    assert "s3cr3t-pass" not in r.output, r.output
    # a token with a quote survives JSON escaping? it must not appear in any form
    quoted = 'tok"en\\with-specials_12345'
    tf.write_text(quoted + "\n")
    r = dl(tmp_path, hub_env, "--token-file", str(tf), "--json")
    assert quoted not in r.output and json.dumps(quoted)[1:-1] not in r.output, r.output


def test_an_oserror_fails_one_repo_and_the_run_goes_on(tmp_path, hub, hub_env):
    # a file where repo a's folder must be: an OSError that root cannot bypass either
    hub.add_repo("org/a", {"config.json": b"{}"})
    hub.add_repo("org/b", {"config.json": b"{}"})
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "a").write_text("in the way")
    write_config(tmp_path, "models:\n  - repo_id: org/a\n  - repo_id: org/b\n")
    r = dl(tmp_path, hub_env, "--json")
    assert (tmp_path / "models" / "a").read_text() == "in the way"
    assert r.code == 1, r.output
    assert "writable" in r.stderr and "unexpected" not in r.stderr, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert (summary["event"], summary["ok"], summary["failed"]) == ("summary", 1, 1)


def test_a_dangling_symlink_in_the_way_fails_that_repo_only(tmp_path, hub, hub_env):
    hub.add_repo("org/a", {"config.json": b"{}"})
    hub.add_repo("org/b", {"config.json": b"{}"})
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "a").symlink_to(tmp_path / "gone" / "nowhere")
    write_config(tmp_path, "models:\n  - repo_id: org/a\n  - repo_id: org/b\n")
    r = dl(tmp_path, hub_env, "--json")
    assert r.code == 1, r.output
    assert "unexpected" not in r.stderr and "Traceback" not in r.output, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert (summary["ok"], summary["failed"]) == (1, 1)
    assert not (tmp_path / "gone").exists()


@pytest.mark.parametrize(
    "body, expected",
    [
        (
            "models:\n  - repo_id: a/b\nmodels:\n  - repo_id: c/d\n",
            "duplicate key 'models' at line 3 (first at line 1)",
        ),
        ("retries: yes\nmodels:\n  - repo_id: a/b\n", "retries"),
        ("max_workers: 0\nmodels:\n  - repo_id: a/b\n", "max_workers"),
        ("timeout_s: '5'\nmodels:\n  - repo_id: a/b\n", "timeout_s"),
        ("x: " + "[" * 50000 + "]" * 50000 + "\n", "nested too deeply"),
        ("models:\n  - repo_id: " + "a" * 5000 + "\n", "…"),
    ],
)
def test_bad_configs_exit_2_with_one_short_line(tmp_path, hub_env, body, expected):
    write_config(tmp_path, body)
    r = dl(tmp_path, hub_env)
    assert r.code == 2, r.output
    assert expected in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and len(r.stderr) < 600, r.stderr


def test_configs_must_be_small_regular_files(tmp_path, hub_env):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    r = dl(tmp_path, hub_env, config=fifo)
    assert r.code == 2 and "not a regular file" in r.stderr, r.output
    r = dl(tmp_path, hub_env, config=Path("/dev/zero"))
    assert r.code == 2 and "not a regular file" in r.stderr, r.output
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (2 << 20) + "\n")
    r = dl(tmp_path, hub_env, config=big)
    assert r.code == 2 and "at most" in r.stderr, r.output


@pytest.mark.parametrize(
    "endpoint, cause",
    [
        ("http://127.0.0.1:9", "connection refused"),
        ("http://no-such-host.invalid", "DNS lookup failed"),
    ],
)
def test_unreachable_hub_is_one_line_with_a_fix(tmp_path, hub_env, endpoint, cause):
    write_config(tmp_path, "retries: 1\nmodels:\n  - repo_id: org/tiny\n")
    r = dl(tmp_path, dict(hub_env, HF_ENDPOINT=endpoint))
    assert r.code == 1, r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.stderr
    assert cause in errors[0] and "HF_HUB_OFFLINE=1" in errors[0], errors[0]
    assert "MaxRetryError" not in r.stderr and "HTTPConnectionPool" not in r.stderr, r.stderr


@pytest.mark.parametrize("workers", [1, 3])
def test_max_workers_bounds_transfers_across_repos(tmp_path, hub, hub_env, workers):
    """Files of several repos are fetched in parallel, never more than max_workers at once, and
    each file still gets its events."""
    hub.rate_bytes_per_s = 2_000_000  # every connection at 2 MB/s
    for r in ("org/a", "org/b"):
        hub.add_repo(r, {f"shard-{i}.safetensors": rnd(400_000, seed=i) for i in range(3)})
    write_config(
        tmp_path, f"max_workers: {workers}\nmodels:\n  - repo_id: org/a\n  - repo_id: org/b\n"
    )
    r = dl(tmp_path, hub_env, "--json")
    assert r.code == 0, r.output
    assert hub.max_streaming == workers, hub.max_streaming
    events = [json.loads(line) for line in r.stdout.splitlines()]
    done = [e for e in events if e["event"] == "file_done"]
    assert len(done) == 6 and all(not e["cached"] for e in done)
    assert [e["event"] for e in events][-1] == "summary"


def test_416_on_resume_restarts_the_file(tmp_path, hub, hub_env, mirror):
    data = rnd(60_000, seed=4)
    hub.add_repo("org/tiny", {"model.safetensors": data})
    from lexalign.download.fetch import partial_path

    part = partial_path(tmp_path / "models/tiny", "model.safetensors")
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:20_000])
    hub.add_fault(where="get", kind="status", status=416, path="model.safetensors", times=1)
    write_config(tmp_path, "models:\n  - repo_id: org/tiny\n")
    r = dl(tmp_path, hub_env)
    assert r.code == 0, r.output
    assert (tmp_path / "models/tiny/model.safetensors").read_bytes() == data
    gets = [rng for _, p, rng in hub.requests("GET") if p.endswith("model.safetensors")]
    assert gets == ["bytes=20000-", None], gets


def test_many_workers_never_make_a_group_or_world_writable_file(tmp_path, hub, hub_env):
    """Atomic writes used to set the umask to 0 and back in worker threads: a file or folder
    another thread created in that window was world-writable."""
    # ranged files (over part_size_mb) record their parts with atomic writes from the workers,
    # while other workers make the folders of theirs
    files = {f"shard-{i:03d}/part.bin": rnd(300_000 + i, seed=i) for i in range(160)}
    hub.add_repo("org/many", files)
    write_config(
        tmp_path,
        "max_workers: 64\npart_size_mb: 0.25\nmax_connections_per_file: 2\n"
        "models:\n  - repo_id: org/many\n",
    )
    old = os.umask(0o022)
    try:
        r = dl(tmp_path, hub_env)
    finally:
        os.umask(old)
    assert r.code == 0, r.output
    root = tmp_path / "models/many"
    loose = [
        str(p.relative_to(root))
        for p in [root, *root.rglob("*")]
        if p.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    ]
    assert len(list(root.rglob("part.bin"))) == 160
    assert loose == [], loose[:10]


def test_atomic_writes_never_touch_the_process_umask(tmp_path, monkeypatch):
    """The umask is process-wide: changing it, even to restore it, races every other thread's
    mkdir/open. It is read once at import, never set afterwards."""
    from lexalign import io

    calls = []
    monkeypatch.setattr(os, "umask", lambda *a: calls.append(a) or 0o022)
    io.atomic_write_text(tmp_path / "a/b.json", "{}")
    io.usual_modes(tmp_path / "a")
    assert calls == []
    assert (tmp_path / "a/b.json").stat().st_mode & 0o777 == 0o666 & ~io.umask()
