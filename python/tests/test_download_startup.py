"""What a download's start-up costs is what it imports and what the collector does (issue 30):
a real download.py process imports huggingface_hub's HTTP helpers but not HfApi's module nor
the training config, holds the collector off while importing and ends with it on; a test
calling the CLI in-process keeps its own collector. The listing the run reads instead of
HfApi.repo_info is checked here against every shape a mirror may send (pure), and the manifest
that is written without building its schema reads back equal."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

import pytest
from conftest import PROJECT, run_cli_here

from lexalign.download.listing import listing_url, parse_listing
from lexalign.download.manifest import Manifest, ManifestFile, read_manifest, write_manifest
from lexalign.download.remote import RemoteFile
from lexalign.errors import RuntimeFailure

SHA = "ab" * 32


# not imported by a download over our own HTTP path: HfApi's module, the training config,
# and huggingface_hub.utils' package __init__ with what only it brings (tqdm, and asyncio)
UNUSED = (
    "huggingface_hub.hf_api",
    "lexalign.trainconfig",
    "torch",
    "transformers",
    "huggingface_hub.utils.tqdm",
    "huggingface_hub.utils._cache_manager",
    "tqdm",
    "asyncio",
)


@pytest.mark.parametrize("use_xet", [False, True])
def test_a_download_process_imports_what_it_uses_and_ends_with_the_collector_on(
    tmp_path, hub, hub_env, use_xet
):
    hub.add_repo("org/x", {"config.json": b"{}", "model.safetensors": b"w" * 3000})
    xet = "use_xet: true\n" if use_xet else ""
    (tmp_path / "c.yaml").write_text(f"{xet}models:\n  - repo_id: org/x\n")
    # what the process holds at its end, said by an atexit handler: the download ends its
    # process itself (startup.end), after the handlers have run
    code = (
        "import atexit, gc, sys, runpy\n"
        "def report():\n"
        f"    print('LOADED=' + ','.join(m for m in {UNUSED!r} if m in sys.modules))\n"
        "    print('HTTP=' + str('huggingface_hub.utils._http' in sys.modules))\n"
        "    print(f'GC={gc.isenabled()} FROZEN={gc.get_freeze_count() > 1000}')\n"
        "atexit.register(report)\n"
        "sys.argv = ['download.py', '--config', 'c.yaml', '-q']\n"
        f"runpy.run_path({str(PROJECT / 'download.py')!r}, run_name='__main__')\n"
        "print('NOT REACHED')\n"
    )
    env = dict(os.environ, **hub_env)
    p = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert (tmp_path / "models/x/model.safetensors").read_bytes() == b"w" * 3000
    assert "HTTP=True" in p.stdout and "GC=True FROZEN=True" in p.stdout, p.stdout
    if use_xet:  # hf_hub_download imports the whole package: it must get all of it
        assert "huggingface_hub.utils.tqdm" in p.stdout, p.stdout
    else:
        assert "LOADED=\n" in p.stdout, p.stdout


def test_the_cli_in_process_leaves_the_callers_collector_alone(tmp_path, hub, hub_env):
    hub.add_repo("org/y", {"config.json": b"{}"})
    (tmp_path / "c.yaml").write_text("models:\n  - repo_id: org/y\n")
    frozen = gc.get_freeze_count()
    r = run_cli_here("download", "--config", "c.yaml", "-q", cwd=tmp_path, env=hub_env)
    assert r.code == 0, r.output
    assert gc.isenabled() and gc.get_freeze_count() == frozen


@pytest.mark.parametrize("repo_type", ["model", "dataset"])
@pytest.mark.parametrize(
    "name", ["config.json", "sub dir/w 1.bin", "ünï/cödé?.txt", "a#b%20c.json", "x/y/z.safetensors"]
)
def test_a_files_resolve_url_is_huggingface_hubs(repo_type, name):
    from huggingface_hub import hf_hub_url

    from lexalign.config import RepoSpec
    from lexalign.download.context import FileJob, RunContext

    ctx = RunContext(*([None] * 10), endpoint="http://127.0.0.1:9")
    job = FileJob(
        RepoSpec(repo_id="org/r"), repo_type, "c" * 40, RemoteFile(name, 1, None, None), None
    )
    want = hf_hub_url(
        "org/r", name, repo_type=repo_type, revision="c" * 40, endpoint="http://127.0.0.1:9"
    )
    assert ctx.url(job) == want


def test_listing_url_quotes_the_revision_and_names_the_kind():
    url = listing_url("http://127.0.0.1:9/", "dataset", "org/d", "refs/pr/1")
    assert url == "http://127.0.0.1:9/api/datasets/org/d/revision/refs%2Fpr%2F1"
    assert listing_url("http://h", "model", "m", "main") == "http://h/api/models/m/revision/main"


def test_a_full_listing_and_a_names_only_listing_read_the_same_names():
    full = {
        "sha": "c" * 40,
        "siblings": [
            {"rfilename": "w.bin", "size": 10, "blobId": "b" * 40, "lfs": {"sha256": SHA}},
            {"rfilename": "config.json", "size": 2, "blobId": "d" * 40},
        ],
    }
    commit, files = parse_listing("org/m", "main", full)
    assert commit == "c" * 40
    assert files == [
        RemoteFile("w.bin", 10, SHA, None),  # an LFS file is checked by its sha256
        RemoteFile("config.json", 2, None, "d" * 40),
    ]
    poor = {"sha": "c" * 40, "siblings": [{"rfilename": "w.bin"}, {"rfilename": "config.json"}]}
    _, files = parse_listing("org/m", "main", poor)
    assert files == [
        RemoteFile("w.bin", None, None, None),
        RemoteFile("config.json", None, None, None),
    ]
    assert parse_listing("org/m", "main", {"sha": "e" * 40}) == ("e" * 40, [])


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ([], "a list, not an object"),
        ({"siblings": []}, "did not return a commit for revision 'v1'"),
        ({"sha": 5, "siblings": []}, "its commit is not a string"),
        ({"sha": "c", "siblings": {"a": 1}}, "its file list is not a list"),
        ({"sha": "c", "siblings": ["a.bin"]}, "a file entry without a name"),
        ({"sha": "c", "siblings": [{"rfilename": 3}]}, "a file entry without a name"),
        ({"sha": "c", "siblings": [{"rfilename": "a", "size": "10"}]}, "'a' has size '10'"),
        ({"sha": "c", "siblings": [{"rfilename": "a", "size": -1}]}, "'a' has size -1"),
        ({"sha": "c", "siblings": [{"rfilename": "a", "size": True}]}, "'a' has size True"),
        (
            {"sha": "c", "siblings": [{"rfilename": "a", "lfs": {"sha256": 7}}]},
            "'a' has sha256 7",
        ),
        ({"sha": "c", "siblings": [{"rfilename": "a", "blobId": ["x"]}]}, "'a' has blob id"),
    ],
)
def test_a_listing_of_the_wrong_shape_is_one_line_naming_the_repo(data, says):
    with pytest.raises(RuntimeFailure) as e:
        parse_listing("org/m", "v1", data)
    msg = str(e.value)
    assert says in msg and msg.startswith("org/m") and "\n" not in msg, msg


def test_a_written_manifest_reads_back_equal_and_damage_is_named(tmp_path):
    m = Manifest(
        repo_id="org/m",
        repo_type="model",
        revision="main",
        commit="c" * 40,
        files=[
            ManifestFile(path="b.json", size=2, sha256=SHA, sha256_source="computed"),
            ManifestFile(path="a.bin", size=0, sha256=SHA, sha256_source="server"),
        ],
        allow_patterns=["*.json"],
    )
    write_manifest(tmp_path, m)
    back, why = read_manifest(tmp_path)
    assert why == "" and back == m and [f.path for f in back.files] == ["a.bin", "b.json"]
    data = json.loads((tmp_path / "lexalign-manifest.json").read_text())
    assert data["completed_at"] and data["files"][0] == {
        "path": "a.bin",
        "size": 0,
        "sha256": SHA,
        "sha256_source": "server",
    }
    for key, value, where in (
        ("commit", "", "commit"),
        ("files", [{"path": "a", "size": "1", "sha256": SHA}], "files.0.size"),
        ("files", [{"path": "a", "size": 1, "sha256": "XYZ"}], "files.0.sha256"),
        ("repo_id", 5, "repo_id"),
    ):
        (tmp_path / "lexalign-manifest.json").write_text(json.dumps(dict(data, **{key: value})))
        got, why = read_manifest(tmp_path)
        assert got is None and f"is damaged ({where}:" in why, why
    (tmp_path / "lexalign-manifest.json").write_text("[1, 2]")
    assert "is damaged ((top level):" in read_manifest(tmp_path)[1]
    (tmp_path / "lexalign-manifest.json").write_text("{nope")
    assert "is unreadable (JSONDecodeError)" in read_manifest(tmp_path)[1]


@pytest.mark.parametrize(
    ("repo", "thread", "code", "teardown"),
    [
        ("org/x", False, 0, False),  # ends itself: no teardown, handlers and output kept
        ("org/missing", False, 1, False),  # the same with a failure's exit code and message
        ("org/x", True, 0, True),  # a thread still running: the usual exit, which joins it
    ],
)
def test_a_download_process_ends_itself_after_its_handlers_and_output(
    tmp_path, hub, hub_env, repo, thread, code, teardown
):
    hub.add_repo("org/x", {"config.json": b"{}"})
    (tmp_path / "c.yaml").write_text(f"models:\n  - repo_id: {repo}\n")
    # An atexit handler leaves a module whose object says so when the interpreter's teardown
    # deallocates it; a thread that outlives the command says when it is done.
    script = (
        "import atexit, os, sys, runpy, threading, time, types\n"
        "class Probe:\n"
        "    def __del__(self, write=os.write):\n"
        "        write(1, b'TEARDOWN\\n')\n"
        "def handler():\n"
        "    m = types.ModuleType('teardown_probe')\n"
        "    m.probe = Probe()\n"
        "    sys.modules[m.__name__] = m\n"
        "    print('ATEXIT', flush=True)\n"
        "atexit.register(handler)\n"
        "def late():\n"
        "    time.sleep(0.5)\n"
        "    print('THREAD DONE', flush=True)\n"
        f"if {thread}:\n"
        "    threading.Thread(target=late).start()\n"
        "sys.argv = ['download.py', '--config', 'c.yaml']\n"
        f"runpy.run_path({str(PROJECT / 'download.py')!r}, run_name='__main__')\n"
    )
    env = dict(os.environ, **hub_env)
    p = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert p.returncode == code, p.stdout + p.stderr
    assert "ATEXIT" in p.stdout and ("TEARDOWN" in p.stdout) == teardown, p.stdout
    assert ("THREAD DONE" in p.stdout) == thread, p.stdout
    if code == 0:
        assert "org/x" in p.stdout and (tmp_path / "models/x/config.json").exists(), p.stdout
    else:
        assert "org/missing" in p.stderr and p.stderr.endswith("\n"), p.stderr
