"""Write the subset of a PEP 751 lock (pylock.toml) whose packages match the given names.

Used by docker/Dockerfile's `lock-split` stage to install the heavy, rarely changing packages
(torch, triton, nvidia-*) in a layer of their own. A trailing `*` is a prefix match on the
PEP 503 normalised name. The output is deterministic: the same lock gives the same bytes, so a
lock change that touches no heavy package leaves the heavy layer cached.

    python3 lock_subset.py IN.toml OUT.toml "torch triton nvidia-*"
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


def subset(text: str, patterns: list[str]) -> str:
    tomllib.loads(text)  # refuse a broken lock before cutting it up
    chunks = re.split(r"(?m)^\[\[packages\]\]\n", text)
    head, blocks = chunks[0], chunks[1:]
    kept = []
    for block in blocks:
        name = tomllib.loads(f"{HEADER}\n{block}")["packages"][0]["name"]
        if matches(name, patterns):
            kept.append(f"{HEADER}\n{block}")
    return "# The heavy subset of pylock.toml (docker/lock_subset.py).\n" + head + "".join(kept)


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        sys.stderr.write(__doc__ or "")
        return 2
    src, dst, patterns = argv[1], argv[2], [normalize(p) for p in argv[3].split()]
    with open(src, encoding="utf-8") as f:
        out = subset(f.read(), patterns)
    with open(dst, "w", encoding="utf-8") as f:
        f.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
