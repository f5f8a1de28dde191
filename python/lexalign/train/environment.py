"""The environment a run trains in, and proof that every rank shares it: `run.json`'s
`environment`, a check across ranks at start (nodes that differ stop the run, naming each), and
the comparison a resume or an align-from-adapter makes with what was recorded."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
from pathlib import Path
from typing import Any

from .. import testing
from ..errors import RuntimeFailure

LOCK_IN_IMAGE = Path("/opt/lexalign/pylock.toml")
ENV_FILE = "lexalign-environment.json"
# What must be equal on every rank (the machine may differ only if the image is multi-arch;
# then the image digest and torch build differ too).
IDENTITY = ("image_id", "image_digest", "lock_sha256", "torch", "cuda")


def environment() -> dict[str, Any]:
    """{image_id, image_digest, lock_sha256, torch, cuda, machine}. The image id and digest come
    from LEXALIGN_IMAGE_ID / LEXALIGN_IMAGE_DIGEST (set by the xtask or a cluster script)."""
    import torch

    lock = None
    if LOCK_IN_IMAGE.is_file():
        lock = hashlib.sha256(LOCK_IN_IMAGE.read_bytes()).hexdigest()
    env = {
        "image_id": os.environ.get("LEXALIGN_IMAGE_ID") or None,
        "image_digest": os.environ.get("LEXALIGN_IMAGE_DIGEST") or None,
        "lock_sha256": lock,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "machine": platform.machine(),
    }
    override = testing.hook("environment_on_node")
    if isinstance(override, dict) and str(override.get("node")) == node_rank():
        env.update({k: v for k, v in override.items() if k in env})
    return env


def node_rank() -> str:
    return os.environ.get("GROUP_RANK") or os.environ.get("LEXALIGN_NODE_RANK") or "0"


def differences(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """`key: old → new` for each identity field that differs (both known)."""
    if not old:
        return []
    out = []
    for k in IDENTITY:
        a, b = old.get(k), new.get(k)
        if a is not None and b is not None and a != b:
            out.append(f"{k}: {str(a)[:19]} → {str(b)[:19]}")
    return out


def check_ranks_agree(env: dict[str, Any]) -> None:
    """Every rank shares its environment with the others; if they differ, every rank raises,
    naming the nodes and what differs. A no-op outside a multi-process run."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return
    mine = {
        "node": node_rank(),
        "host": socket.gethostname(),
        "rank": dist.get_rank(),
        "identity": {k: env.get(k) for k in IDENTITY},
    }
    everyone: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in everyone:
        groups.setdefault(json.dumps(r["identity"], sort_keys=True), []).append(r)
    if len(groups) < 2:
        return
    reference = json.loads(next(iter(groups)))
    parts = []
    for key, members in groups.items():
        ident = json.loads(key)
        nodes = sorted({m["node"] for m in members})
        ranks = sorted(m["rank"] for m in members)
        diff = [f"{k}={str(ident[k])[:19]}" for k in IDENTITY if ident[k] != reference[k]] or [
            f"{k}={str(ident[k])[:19]}" for k in IDENTITY if ident[k] is not None
        ][:2]
        parts.append(
            f"node {', '.join(nodes)} (ranks {','.join(map(str, ranks))}, {members[0]['host']}): {'; '.join(diff)}"
        )
    raise RuntimeFailure(
        "the nodes run different environments — "
        + " | ".join(parts)
        + "; run every node from the same image (pin it by its lock tag or digest)"
    )


def write_env_file(folder: Path, env: dict[str, Any]) -> None:
    from ..io import atomic_write_text

    atomic_write_text(folder / ENV_FILE, json.dumps(env, indent=2) + "\n")


def read_env_file(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / ENV_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
