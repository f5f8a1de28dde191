"""Bytes on disk are the bytes published, or the run fails: a body shorter than its framing
(Content-Length, Content-Range, a chunked body's last chunk) is a dropped connection, retried
from the exact byte; every size and hash the server states — in the listing or only in the
resolve answers' headers — is checked, and a disagreement is named. Run against the Hub's
full listing and against a mirror that lists file names only."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from test_download import dl, rnd, write_config

SIZE = 25_165_824  # 24 MiB
CUT = 12_000_000
BIG = rnd(SIZE, seed=26)
BIG_SHA = hashlib.sha256(BIG).hexdigest()
SMALL = b'{"model_type": "gpt2", "n_layer": 2}'


def _config(tmp_path: Path, connections: int, extra: str = "") -> None:
    write_config(
        tmp_path,
        f"retries: 3\npart_size_mb: 1\nmax_connections_per_file: {connections}\n{extra}"
        "models:\n  - repo_id: org/big\n",
    )


def _manifest(tmp_path: Path) -> dict[str, dict]:
    doc = json.loads((tmp_path / "models/big/lexalign-manifest.json").read_text())
    return {f["path"]: f for f in doc["files"]}


def _starts(hub) -> list[int]:
    """Where each GET of the big file started (0 for a request without Range)."""
    return [
        int(rng[6:].split("-")[0]) if rng else 0
        for _, _, rng in hub.requests("GET", "model.safetensors")
    ]


@pytest.mark.parametrize("connections", [1, 4], ids=["one-connection", "ranged"])
def test_a_drop_mid_file_is_resumed_at_its_byte_never_a_short_file(
    tmp_path, hub, hub_env, mirror, connections
):
    """The reported case: Content-Length 25165824 announced, connection closed after 12,000,000."""
    hub.add_repo("org/big", {"model.safetensors": BIG, "config.json": SMALL})
    hub.add_fault(where="get", kind="drop", path="model.safetensors", after_bytes=CUT)
    _config(tmp_path, connections)
    r = dl(tmp_path, hub_env)
    assert r.code == 0, r.output
    out = tmp_path / "models/big/model.safetensors"
    assert out.stat().st_size == SIZE
    assert hashlib.sha256(out.read_bytes()).hexdigest() == BIG_SHA
    assert "retry 1/3" in r.stderr, r.stderr
    assert CUT in _starts(hub), f"not resumed at byte {CUT}: {_starts(hub)}"
    assert hub.served == SIZE + len(SMALL), "nothing fetched twice"
    entry = _manifest(tmp_path)["model.safetensors"]
    assert entry["size"] == SIZE and entry["sha256"] == BIG_SHA
    assert entry["sha256_source"] == "server"
    assert _manifest(tmp_path)["config.json"]["sha256_source"] == "git-sha1"
    assert dl(tmp_path, hub_env, "--verify").code == 0


@pytest.mark.parametrize("connections", [1, 4], ids=["one-connection", "ranged"])
def test_drops_past_the_retry_budget_fail_naming_the_file(
    tmp_path, hub, hub_env, mirror, connections
):
    hub.add_repo("org/big", {"model.safetensors": BIG})
    hub.add_fault(
        where="get", kind="drop", path="model.safetensors", after_bytes=5_000_000, times=99
    )
    write_config(
        tmp_path,
        f"retries: 1\npart_size_mb: 1\nmax_connections_per_file: {connections}\n"
        "models:\n  - repo_id: org/big\n",
    )
    r = dl(tmp_path, hub_env)
    assert r.code == 1, r.output
    assert "model.safetensors" in r.stderr and "gave up after 2 attempt(s)" in r.stderr, r.stderr
    assert not (tmp_path / "models/big/model.safetensors").exists()
    assert not (tmp_path / "models/big/lexalign-manifest.json").exists()


def test_a_206_that_ends_early_is_continued_from_its_last_byte(tmp_path, hub, hub_env, mirror):
    hub.add_repo("org/big", {"model.safetensors": BIG})
    hub.add_fault(where="get", kind="drop", path="model.safetensors", after_bytes=CUT)
    hub.add_fault(
        where="get",
        kind="drop",
        path="model.safetensors",
        range_start=CUT,
        after_bytes=1_000_000,
    )
    _config(tmp_path, 1)
    r = dl(tmp_path, hub_env)
    assert r.code == 0, r.output
    assert (tmp_path / "models/big/model.safetensors").read_bytes() == BIG
    assert _starts(hub) == [0, CUT, CUT + 1_000_000], _starts(hub)


@pytest.mark.parametrize("cut", [CUT, 1 << 20], ids=["mid-chunk", "at-a-chunk-boundary"])
def test_a_chunked_body_cut_short_is_a_drop_even_when_nothing_states_a_size(
    tmp_path, hub, hub_env, cut
):
    """The poorest honest mirror: names-only listing, no hash or size headers, chunked bodies
    (no Content-Length): only the missing last chunk tells that the body was cut."""
    hub.listing, hub.hash_headers, hub.chunked = "names", False, True
    hub.add_repo("org/big", {"model.safetensors": BIG})
    hub.add_fault(where="get", kind="drop", path="model.safetensors", after_bytes=cut)
    _config(tmp_path, 1)
    r = dl(tmp_path, hub_env)
    assert r.code == 0, r.output
    assert (tmp_path / "models/big/model.safetensors").read_bytes() == BIG
    assert _starts(hub) == [0, cut], _starts(hub)
    entry = _manifest(tmp_path)["model.safetensors"]
    assert entry["sha256"] == BIG_SHA and entry["sha256_source"] == "computed"
    v = dl(tmp_path, hub_env, "--verify")
    assert v.code == 0, v.output
    assert "no server stated a hash" in v.stderr and "1 unvouched" in v.stdout, v.output


@pytest.mark.parametrize("connections", [1, 4], ids=["one-connection", "ranged"])
def test_a_mirror_without_hashes_still_gets_every_byte_its_length_announces(
    tmp_path, hub, hub_env, connections
):
    hub.listing, hub.hash_headers = "names", False
    hub.add_repo("org/big", {"model.safetensors": BIG})
    hub.add_fault(where="get", kind="drop", path="model.safetensors", after_bytes=CUT)
    _config(tmp_path, connections)
    r = dl(tmp_path, hub_env)
    assert r.code == 0, r.output
    assert (tmp_path / "models/big/model.safetensors").read_bytes() == BIG
    assert CUT in _starts(hub)
    assert _manifest(tmp_path)["model.safetensors"]["sha256_source"] == "computed"


def test_the_hash_in_the_headers_is_checked_when_the_listing_has_none(tmp_path, hub, hub_env):
    """Names-only listing; the resolve answer's X-Linked-Etag states the sha256 and the server
    sends other bytes: refetched, then the repo fails naming the header."""
    hub.listing = "names"
    repo = hub.add_repo("org/big", {"model.safetensors": rnd(300_000, seed=1)})
    hub.hashes(repo, "model.safetensors")  # the headers state these bytes' sha256 …
    repo.files["model.safetensors"] = rnd(300_000, seed=2)  # … the body is other bytes
    write_config(tmp_path, "retries: 1\nmodels:\n  - repo_id: org/big\n")
    r = dl(tmp_path, hub_env)
    assert r.code == 1, r.output
    assert "sha256 mismatch" in r.stderr and "X-Linked-Etag" in r.stderr, r.stderr
    assert "integrity check" in r.stderr
    assert not (tmp_path / "models/big/model.safetensors").exists()


def test_a_small_files_git_blob_id_in_the_etag_is_checked(tmp_path, hub, hub_env):
    hub.listing = "names"
    hub.add_repo("org/big", {"config.json": SMALL})
    hub.add_fault(where="get", kind="garble", path="config.json")
    write_config(tmp_path, "models:\n  - repo_id: org/big\n")
    r = dl(tmp_path, hub_env)
    assert r.code == 0, r.output
    assert "git blob id mismatch" in r.stderr and "ETag header" in r.stderr, r.stderr
    assert (tmp_path / "models/big/config.json").read_bytes() == SMALL
    assert _manifest(tmp_path)["config.json"]["sha256_source"] == "git-sha1"


@pytest.mark.parametrize(
    "header, value, says",
    [
        ("X-Linked-Size", str(SIZE - 1), "X-Linked-Size header says"),
        ("X-Linked-Etag", '"' + "0" * 64 + '"', "X-Linked-Etag header says"),
    ],
)
def test_headers_that_contradict_the_listing_are_named_and_nothing_is_kept(
    tmp_path, hub, hub_env, header, value, says
):
    hub.add_repo("org/big", {"model.safetensors": BIG})
    hub.header_overrides["model.safetensors"] = {header: value}
    _config(tmp_path, 4)
    r = dl(tmp_path, hub_env)
    assert r.code == 1, r.output
    assert "contradicts itself" in r.stderr and "repo listing says" in r.stderr, r.stderr
    assert says in r.stderr, r.stderr
    assert not (tmp_path / "models/big/model.safetensors").exists()
    cache = tmp_path / "models/big/.cache/lexalign"
    assert not any(p.suffix == ".incomplete" for p in cache.iterdir())


def test_a_content_length_that_contradicts_the_listing_is_named(tmp_path, hub, hub_env, mirror):
    """A proxy that cut the file and said so (Content-Length 12,000,000 for a file the listing
    or X-Linked-Size gives as 25,165,824): never a file of that length."""
    hub.ranges = False
    hub.add_repo("org/big", {"model.safetensors": BIG})
    hub.header_overrides["model.safetensors"] = {"Content-Length": str(CUT)}
    _config(tmp_path, 1)
    r = dl(tmp_path, hub_env)
    assert r.code == 1, r.output
    assert "contradicts itself" in r.stderr and f"Content-Length header says {CUT}" in r.stderr
    assert not (tmp_path / "models/big/model.safetensors").exists()


@pytest.mark.parametrize("listing", ["full", "names"])
def test_use_xet_checks_what_the_server_states_too(tmp_path, hub, hub_env, listing):
    """`use_xet: true` hands the transfer to huggingface_hub; the file is still checked against
    the listing or, without one, the resolve answer's headers — and refetched when wrong."""
    hub.listing = listing
    hub.add_repo("org/big", {"model.safetensors": rnd(300_000, seed=5), "config.json": SMALL})
    hub.add_fault(where="get", kind="garble", path="model.safetensors")
    write_config(tmp_path, "use_xet: true\nretries: 2\nmodels:\n  - repo_id: org/big\n")
    r = dl(tmp_path, hub_env)
    assert r.code == 0, r.output
    assert "sha256 mismatch" in r.stderr, r.stderr
    m = _manifest(tmp_path)
    assert m["model.safetensors"]["sha256"] == hashlib.sha256(rnd(300_000, seed=5)).hexdigest()
    assert m["model.safetensors"]["sha256_source"] == "server"
    assert m["config.json"]["sha256_source"] == "git-sha1"
