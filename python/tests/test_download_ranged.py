"""Large files over several ranged connections (fetch.py, parts.py) against the Hub imitation:
parts at their offsets, the connection budget, a server that ignores ranges, a drop in the middle
of a part, Ctrl-C, mirrors that lie about ranges, bad config values, and two runs at once into
one folder (lock.py)."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_download import dl, rnd, start_download, write_config

MB = 1 << 20
SIZE = 6 * MB + 12_345  # seven parts of 1 MB (the last one short)
BIG = rnd(SIZE, seed=11)


def _config(tmp_path: Path, extra: str = "", connections: int = 4) -> None:
    write_config(
        tmp_path,
        f"part_size_mb: 1\nmax_connections_per_file: {connections}\n{extra}"
        "models:\n  - repo_id: org/big\n",
    )


def _ranges(hub) -> list[tuple[int, int | None]]:
    out = []
    for _, _, rng in hub.requests("GET", "model.safetensors"):
        if rng:
            a, _, b = rng[6:].partition("-")
            out.append((int(a), int(b) if b else None))
    return out


def _leftovers(folder: Path) -> list[str]:
    cache = folder / ".cache" / "lexalign"
    return sorted(p.name for p in cache.iterdir()) if cache.is_dir() else []


def _tiled(ranges: list[tuple[int, int | None]]) -> bool:
    """Every byte of the file asked for, by requests inside the file."""
    covered = sorted((a, b if b is not None else SIZE - 1) for a, b in ranges)
    at = 0
    for a, b in covered:
        if a > at or b >= SIZE:
            return False
        at = max(at, b + 1)
    return at == SIZE


def test_a_large_file_comes_in_parts_at_once_and_is_whole(tmp_path, hub, hub_env):
    hub.rate_bytes_per_s = MB  # every connection: a 6 MB file would take 6 s on one
    hub.add_repo("org/big", {"model.safetensors": BIG, "config.json": b"{}"})
    _config(tmp_path, "max_workers: 8\n")
    t0 = time.monotonic()
    r = dl(tmp_path, hub_env, "--json")
    took = time.monotonic() - t0
    assert r.code == 0, r.output
    out = tmp_path / "models/big/model.safetensors"
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(BIG).digest()
    ranges = _ranges(hub)
    assert ranges[0] == (0, SIZE - 1), "one request first, for the whole file"
    assert len(ranges) >= 3 and _tiled(ranges), ranges
    assert hub.max_streaming >= 3, "parts of one file were not fetched at once"
    assert hub.max_streaming <= 4 + 1, hub.max_streaming  # 4 for the file, 1 for config.json
    assert hub.served <= SIZE + 2 + len(ranges) * 256 * 1024, "a split wastes at most a read"
    assert took < 6, f"{took:.1f} s: no faster than one connection"
    assert _leftovers(tmp_path / "models/big") == [], "no partial, parts record or lock left"
    events = [json.loads(line) for line in r.stdout.splitlines()]
    done = [e for e in events if e["event"] == "file_done" and e["path"] == "model.safetensors"]
    assert len(done) == 1 and done[0]["bytes"] == SIZE
    manifest = json.loads((tmp_path / "models/big/lexalign-manifest.json").read_text())
    entry = next(f for f in manifest["files"] if f["path"] == "model.safetensors")
    assert entry["sha256"] == hashlib.sha256(BIG).hexdigest()


def test_small_files_stay_one_request(tmp_path, hub, hub_env):
    hub.add_repo("org/big", {"model.safetensors": BIG})
    write_config(tmp_path, "models:\n  - repo_id: org/big\n")  # default part size: 16 MB
    r = dl(tmp_path, hub_env)
    assert r.code == 0, r.output
    assert _ranges(hub) == [] and len(hub.requests("GET", "model.safetensors")) == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_extra_connections_come_out_of_max_workers(tmp_path, hub, hub_env, workers):
    hub.rate_bytes_per_s = 2 * MB
    hub.add_repo("org/big", {"model.safetensors": BIG})
    _config(tmp_path, f"max_workers: {workers}\n")
    r = dl(tmp_path, hub_env)
    assert r.code == 0, r.output
    assert hub.max_streaming == workers, hub.max_streaming
    assert (tmp_path / "models/big/model.safetensors").read_bytes() == BIG


def test_a_server_that_ignores_ranges_gets_one_connection_and_sends_the_file_once(
    tmp_path, hub, hub_env, mirror
):
    hub.ranges = False
    hub.add_repo("org/big", {"model.safetensors": BIG})
    _config(tmp_path)
    r = dl(tmp_path, hub_env)
    assert r.code == 0, r.output
    assert (tmp_path / "models/big/model.safetensors").read_bytes() == BIG
    assert len(hub.requests("GET", "model.safetensors")) == 1
    assert hub.served == SIZE


def test_a_drop_in_the_middle_of_a_part_resumes_at_its_byte(tmp_path, hub, hub_env, mirror):
    hub.add_repo("org/big", {"model.safetensors": BIG})
    hub.add_fault(
        where="get", kind="drop", path="model.safetensors", range_start=0, after_bytes=300_000
    )
    _config(tmp_path)
    r = dl(tmp_path, hub_env)
    assert r.code == 0, r.output
    assert (tmp_path / "models/big/model.safetensors").read_bytes() == BIG
    ranges = _ranges(hub)
    assert ranges[:2] == [(0, SIZE - 1), (300_000, SIZE - 1)], ranges
    assert hub.served == SIZE, "nothing fetched twice"


def test_a_failed_run_leaves_parts_a_rerun_resumes_each_at_its_byte(tmp_path, hub, hub_env, mirror):
    hub.add_repo("org/big", {"model.safetensors": BIG})
    hub.add_fault(
        where="get", kind="drop", path="model.safetensors", range_start=0, after_bytes=500_000
    )
    write_config(
        tmp_path,
        "part_size_mb: 1\nmax_connections_per_file: 2\nretries: 0\nmodels:\n  - repo_id: org/big\n",
    )
    r = dl(tmp_path, hub_env)
    assert r.code == 1, r.output
    left = _leftovers(tmp_path / "models/big")
    assert any(n.endswith(".parts.json") for n in left), left
    state = json.loads(
        next((tmp_path / "models/big/.cache/lexalign").glob("*.parts.json")).read_text()
    )
    recorded = {s: d for s, _, d in state["parts"]}
    assert recorded == {0: 500_000}, recorded
    hub.log.clear()
    before = hub.served
    r = dl(tmp_path, hub_env)
    assert r.code == 0, r.output
    assert (tmp_path / "models/big/model.safetensors").read_bytes() == BIG
    starts = {a for a, _ in _ranges(hub)}
    assert 500_000 in starts and 0 not in starts, starts
    assert hub.served - before == SIZE - sum(recorded.values())
    assert _leftovers(tmp_path / "models/big") == []


@pytest.mark.integration
def test_ctrl_c_during_ranged_parts_then_resume(tmp_path, hub, hub_env):
    hub.add_repo("org/big", {"model.safetensors": BIG})
    hub.add_fault(
        where="get",
        kind="stall",
        path="model.safetensors",
        range_start=0,
        after_bytes=3 * MB + 200_000,
        seconds=30,
    )
    _config(tmp_path, "timeout_s: 60\n", connections=2)
    proc = start_download(tmp_path, hub_env)
    for _ in range(200):
        if hub.served >= 3 * MB + 200_000:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert not (tmp_path / "models/big/model.safetensors").exists()
    cache = tmp_path / "models/big/.cache/lexalign"
    state = json.loads(next(cache.glob("*.parts.json")).read_text())
    kept = sum(d for _, _, d in state["parts"])
    assert kept >= 3 * MB, state
    assert not list(cache.glob("*.lock")), "the lock goes with the run"
    hub.clear_faults()
    hub.log.clear()
    before = hub.served
    r = dl(tmp_path, hub_env)
    assert r.code == 0, r.output
    assert (tmp_path / "models/big/model.safetensors").read_bytes() == BIG
    assert any(a == 3 * MB + 200_000 for a, _ in _ranges(hub)), _ranges(hub)
    assert hub.served - before == SIZE - kept


@pytest.mark.parametrize("kind", ["garble", "misrange"])
def test_a_mirror_that_lies_about_ranges_ends_with_the_right_file_on_one_connection(
    tmp_path, hub, hub_env, kind, mirror
):
    hub.add_repo("org/big", {"model.safetensors": BIG})
    hub.add_fault(where="get", kind=kind, path="model.safetensors", ranged=True, times=1000)
    _config(tmp_path)
    r = dl(tmp_path, hub_env)
    assert r.code == 0, r.output
    assert (tmp_path / "models/big/model.safetensors").read_bytes() == BIG
    assert "one connection" in r.stderr, r.stderr
    full = [rng for _, _, rng in hub.requests("GET", "model.safetensors") if not rng]
    assert len(full) == 1, "refetched once, whole, on one connection"
    assert _leftovers(tmp_path / "models/big") == []


def test_a_mirror_that_always_sends_wrong_bytes_fails_the_repo_naming_the_file(
    tmp_path, hub, hub_env, mirror
):
    repo = hub.add_repo("org/big", {"model.safetensors": BIG})
    hub.hashes(repo, "model.safetensors")  # the listing publishes BIG's sha256 …
    repo.files["model.safetensors"] = rnd(SIZE, seed=12)  # … the file server sends other bytes
    _config(tmp_path, "retries: 1\n")
    r = dl(tmp_path, hub_env)
    assert r.code == 1, r.output
    assert "model.safetensors" in r.stderr and "integrity check" in r.stderr, r.stderr
    assert not (tmp_path / "models/big/model.safetensors").exists()


def test_a_part_longer_than_its_range_is_an_error_and_the_partial_is_removed(
    tmp_path, hub, hub_env, mirror
):
    hub.add_repo("org/big", {"model.safetensors": BIG})
    hub.add_fault(where="get", kind="overlong", path="model.safetensors", range_start=0, times=10)
    _config(tmp_path)
    t0 = time.monotonic()
    r = dl(tmp_path, hub_env)
    assert r.code == 1, r.output
    assert f"more than the {SIZE} bytes of the range at 0" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 30
    assert not (tmp_path / "models/big/model.safetensors").exists()
    assert not any(
        n.endswith((".incomplete", ".parts.json")) for n in _leftovers(tmp_path / "models/big")
    )


def test_a_short_range_answer_is_continued(tmp_path, hub, hub_env, mirror):
    """A server may answer a range with fewer bytes (an honest Content-Range): ask for the rest."""
    hub.range_cap = 300_000
    hub.add_repo("org/big", {"model.safetensors": BIG})
    _config(tmp_path)
    r = dl(tmp_path, hub_env)
    assert r.code == 0, r.output
    assert (tmp_path / "models/big/model.safetensors").read_bytes() == BIG
    assert (300_000, SIZE - 1) in _ranges(hub), _ranges(hub)
    assert hub.served == SIZE


@pytest.mark.parametrize(
    "line, key",
    [
        ("max_connections_per_file: 0", "max_connections_per_file"),
        ("max_connections_per_file: 65", "max_connections_per_file"),
        ("part_size_mb: -1", "part_size_mb"),
        ("part_size_mb: 0", "part_size_mb"),
        ("part_size_mb: 100000", "part_size_mb"),
    ],
)
def test_bad_ranged_settings_exit_2_naming_the_key_and_range(tmp_path, hub, hub_env, line, key):
    write_config(tmp_path, f"{line}\nmodels:\n  - repo_id: org/big\n")
    r = dl(tmp_path, hub_env)
    assert r.code == 2, r.output
    assert key in r.stderr and ("greater than" in r.stderr or "less than" in r.stderr), r.stderr
    assert hub.requests() == []


# -- two runs into one folder -----------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("ranged", [True, False])
def test_two_runs_of_one_config_at_once_end_with_files_that_verify(tmp_path, hub, hub_env, ranged):
    hub.rate_bytes_per_s = 3 * MB
    files = {f"shard-{i}.safetensors": rnd(2 * MB + i, seed=20 + i) for i in range(3)}
    files["model.safetensors"] = BIG
    hub.add_repo("org/big", files)
    _config(tmp_path, connections=4 if ranged else 1)
    a, b = start_download(tmp_path, hub_env), start_download(tmp_path, hub_env)
    (_, err_a), (_, err_b) = a.communicate(timeout=120), b.communicate(timeout=120)
    for p, err in ((a, err_a), (b, err_b)):
        assert p.returncode == 0 or "another download run (pid" in err, err
    assert a.returncode == 0 or b.returncode == 0, err_a + err_b
    waited = err_a + err_b
    assert "another download run (pid" in waited and "is fetching it into this folder" in waited
    for name, data in files.items():
        assert (tmp_path / "models/big" / name).read_bytes() == data
    v = dl(tmp_path, hub_env, "--verify")
    assert v.code == 0, v.output
    assert _leftovers(tmp_path / "models/big") == []


@pytest.mark.integration
def test_a_run_takes_over_from_a_killed_one(tmp_path, hub, hub_env):
    hub.rate_bytes_per_s = 2 * MB
    hub.add_repo("org/big", {"model.safetensors": BIG})
    _config(tmp_path, connections=2)
    first = start_download(tmp_path, hub_env)
    for _ in range(200):
        if hub.served >= 2 * MB:
            break
        time.sleep(0.05)
    first.kill()  # no clean-up at all: its lock file stays, the kernel drops the lock
    first.communicate(timeout=30)
    cache = tmp_path / "models/big/.cache/lexalign"
    assert list(cache.glob("*.lock")), "a killed run leaves its lock file"
    hub.rate_bytes_per_s = None
    r = dl(tmp_path, hub_env)
    assert r.code == 0, r.output
    assert "another download run" not in r.stderr
    assert (tmp_path / "models/big/model.safetensors").read_bytes() == BIG
    assert _leftovers(tmp_path / "models/big") == []


def test_a_run_waiting_for_another_names_it_when_its_deadline_passes(tmp_path, hub, hub_env):
    """The other run is stuck (here: a process that holds the lock and does nothing)."""
    from lexalign.download.parts import lock_path

    hub.add_repo("org/big", {"model.safetensors": BIG})
    _config(tmp_path, "deadline_s: 2\n")
    lock = lock_path(tmp_path / "models/big", "model.safetensors")
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, json, os, sys, time\n"
            f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, json.dumps({'pid': os.getpid(), 'host': 'h', 'command': 'download.py -c other.yaml', 'since': 'now'}).encode())\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        r = dl(tmp_path, hub_env)
    finally:
        holder.kill()
        holder.wait()
    assert r.code == 1, r.output
    assert f"pid {holder.pid}" in r.stderr and "download.py -c other.yaml" in r.stderr, r.stderr
    assert "deadline_s=2 exceeded while waiting" in r.stderr, r.stderr
    assert hub.requests("GET", "model.safetensors") == []


# -- the parts record, without a server -------------------------------------------------------


def test_parts_record_that_does_not_tile_the_file_is_not_trusted(tmp_path):
    from lexalign.download.parts import Partial, partial_path, state_path

    part = partial_path(tmp_path, "f.bin")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 100)
    good = {"version": 1, "size": 100, "parts": [[0, 50, 10], [50, 100, 50]]}
    for doc, trusted in [
        (good, True),
        ({**good, "size": 99}, False),
        ({**good, "parts": [[0, 50, 10], [40, 100, 0]]}, False),  # overlap
        ({**good, "parts": [[0, 50, 10], [60, 100, 0]]}, False),  # gap
        ({**good, "parts": [[0, 50, 51], [50, 100, 0]]}, False),  # more done than the part
        ({**good, "version": 9}, False),
    ]:
        state_path(part).write_text(json.dumps(doc))
        p = Partial.load(tmp_path, "f.bin", 100, 50, 4)
        if trusted:
            assert p.ranged and [(q.start, q.end, q.done) for q in p.parts] == [
                (0, 50, 10),
                (50, 100, 50),
            ]
        else:
            assert p.have() == 0 and not part.exists() and not state_path(part).exists(), doc
        part.write_bytes(b"\0" * 100)


def test_a_folder_without_file_locks_is_used_with_a_warning(tmp_path, monkeypatch):
    """flock refused by the filesystem (ENOLCK: NFS without lockd): the download goes on, and
    says once that two runs into that folder are not safe."""
    import errno
    import fcntl
    import threading

    from lexalign.download import lock
    from lexalign.download.deadline import Deadline

    def refuse(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", refuse)
    said: list[str] = []
    for name in ("a.lock", "b.lock"):
        with lock.held(
            tmp_path / name,
            name,
            deadline=Deadline(10),
            stop=threading.Event(),
            waiting=said.append,
        ):
            assert (tmp_path / name).exists()
    assert len(said) == 1 and "cannot hold file locks" in said[0], said


def test_a_connection_faster_than_half_the_hash_rate_is_not_split(tmp_path):
    """Partial.split (pure): a part is split for its rate only below `below_rate` — the file's
    hash follows its first part only, so a split of a connection that the machine's sha256
    can barely follow costs more than it brings (ranged.py passes half the measured rate)."""
    import time

    from lexalign.download.digest import hash_rate
    from lexalign.download.parts import Part, Partial

    def one_part(rate: float) -> Partial:
        p = Part(0, 400 * MB, active=True, since=time.monotonic() - 1.0, got=int(rate))
        return Partial(tmp_path / "f.part", 400 * MB, [p], ranged=True)

    slow, fast = one_part(50 * MB), one_part(900 * MB)
    bound = 300 * MB
    assert slow.split(16 * MB, 1.0, take=False, below_rate=bound) is not None
    assert fast.split(16 * MB, 1.0, take=False, below_rate=bound) is None
    assert fast.split(16 * MB, 0.1, take=False) is not None  # no bound: its 0.4 s left is worth it
    new = slow.split(16 * MB, 1.0, below_rate=bound)
    assert new is not None and new.end == 400 * MB and slow.parts[0].end == new.start
    assert 50 * MB < hash_rate() < 100_000 * MB  # bytes/s, measured
