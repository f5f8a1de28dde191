"""One dependency tier of the image above the heavy one (the deps-huge, deps-big and deps stages
run it): sync the venv to the tier's subset of the lock, hash-checked, from the uv cache mount,
then compile the bytecode of what this sync wrote, and only that.

uv's `--compile-bytecode` walks the whole site-packages every time, so each tier re-checked
torch's and every lower tier's 10,000+ files (~1 s a tier here, more beside the heavy layer's
export). Here: the top-level entries of site-packages the sync created or changed (a namespace
folder such as nvidia/ or google/ counts when a package was added to it), their .py files
compiled on every core, each skipped when its bytecode is current. Like uv's, the compile
ignores the odd file that is not valid Python 3 (tests and templates some packages ship).

    python3.11 tier_sync.py LOCK.toml
"""

from __future__ import annotations

import compileall
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

VENV = Path("/opt/venv")
SITE = VENV / "lib/python3.11/site-packages"


def sync(lock: str) -> None:
    env = dict(os.environ, UV_CACHE_DIR="/var/cache/lexalign/uv")
    if os.path.isfile("/run/secrets/ca") and os.path.getsize("/run/secrets/ca") > 0:
        env["SSL_CERT_FILE"] = "/run/secrets/ca"
    cmd = [
        "uv",
        "pip",
        "sync",
        "--python",
        str(VENV / "bin/python"),
        "--require-hashes",
        lock,
    ]
    subprocess.run(cmd, env=env, check=True)


def changed_since(start_ns: int) -> list[Path]:
    """The .py files under the top-level entries created or changed since `start_ns`."""
    files: list[Path] = []
    for entry in os.scandir(SITE):
        if entry.name.endswith((".dist-info", ".pth")):
            continue
        if entry.stat(follow_symlinks=False).st_ctime_ns < start_ns:
            continue
        if entry.is_file() and entry.name.endswith(".py"):
            files.append(Path(entry.path))
        elif entry.is_dir(follow_symlinks=False):
            files.extend(Path(entry.path).rglob("*.py"))
    return files


def compile_one(path: Path) -> bool:
    return bool(compileall.compile_file(str(path), quiet=2))


def now_ns() -> int:
    """The file system's own clock (coarser than time.time_ns(), which may run ahead of it)."""
    with tempfile.NamedTemporaryFile() as mark:
        return os.stat(mark.name).st_mtime_ns


def main() -> None:
    (lock,) = sys.argv[1:]
    start_ns = now_ns()
    sync(lock)
    files = changed_since(start_ns)
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(compile_one, files, chunksize=64))


if __name__ == "__main__":
    main()
