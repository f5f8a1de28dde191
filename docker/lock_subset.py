"""Write the subset of a PEP 751 lock (pylock.toml) whose packages match the given names, or
(with MIN_MB) whose largest artifact in the lock — any wheel, or the sdist — is at least MIN_MB
megabytes (10^6 bytes).

Used by docker/Dockerfile's `lock-split` stage to install the dependencies in layers by weight:
the heavy, rarely changing packages (torch, triton, nvidia-*) first, then the packages with an
artifact of 15 MB or more, then of 2 MB or more, then the rest. A trailing `*` is a prefix match
on the PEP 503 normalised name. The output is decided by the lock alone (a universal lock lists
every platform's artifacts, so amd64 and arm64 get the same layers) and is deterministic: the
same lock gives the same bytes, so a lock change that touches no package of a layer, or of the
layers below it, leaves that layer cached.

    python3 lock_subset.py IN.toml OUT.toml "torch triton nvidia-*" [MIN_MB]
"""

from __future__ import annotations

import re
import sys
import tomllib

HEADER = "[[packages]]"


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def matches(name: str, patterns: list[str]) -> bool:
    n = normalize(name)
    return any(n.startswith(p[:-1]) if p.endswith("*") else n == p for p in patterns)


def largest_artifact(package: dict) -> int:
    """The size in bytes of the package's largest wheel or sdist listed in the lock."""
    sizes = [w.get("size", 0) for w in package.get("wheels", [])]
    sizes.append(package.get("sdist", {}).get("size", 0))
    return max(sizes)


def subset(text: str, patterns: list[str], min_mb: float | None = None) -> str:
    packages = tomllib.loads(text)["packages"]  # a broken lock is refused before it is cut up
    chunks = re.split(r"(?m)^\[\[packages\]\]\n", text)
    head, blocks = chunks[0], chunks[1:]
    if len(blocks) != len(packages):
        raise SystemExit("lock_subset.py: every [[packages]] table must start a line of its own")
    kept = []
    for block, package in zip(blocks, packages, strict=True):
        big = min_mb is not None and largest_artifact(package) >= min_mb * 1e6
        if matches(package["name"], patterns) or big:
            kept.append(f"{HEADER}\n{block}")
    what = f"heavy packages and artifacts of {min_mb:g} MB or more" if min_mb else "heavy packages"
    return f"# The subset of pylock.toml: {what} (docker/lock_subset.py).\n" + head + "".join(kept)


def main(argv: list[str]) -> int:
    if len(argv) not in (4, 5):
        sys.stderr.write(__doc__ or "")
        return 2
    src, dst, patterns = argv[1], argv[2], [normalize(p) for p in argv[3].split()]
    min_mb = float(argv[4]) if len(argv) == 5 else None
    with open(src, encoding="utf-8") as f:
        out = subset(f.read(), patterns, min_mb)
    with open(dst, "w", encoding="utf-8") as f:
        f.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
