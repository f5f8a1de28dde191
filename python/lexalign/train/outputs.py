"""What a run leaves in output_dir, and reading it back: checkpoints (complete ones only), the
fingerprint that makes resume refuse another base model or LoRA shape, metrics.jsonl (each step
once across resumes), run.json, and the SFT adapter an align output carries."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..io import atomic_write_text
from ..kinds import ResumeMode
from ..trainconfig import TrainConfigBase
from .dist import is_main

FINGERPRINT = "lexalign-fingerprint.json"
BASE_ADAPTER_DIR = "base_adapter"


def checkpoint_step(path: Path) -> int | None:
    m = re.fullmatch(r"checkpoint-(\d+)", path.name)
    return int(m.group(1)) if m else None


COMPLETE_MARK = "lexalign-checkpoint.json"
# Checkpoints of format 2 (their fingerprint says so) are complete only with COMPLETE_MARK;
# older ones (no format key) by the files they hold.
CHECKPOINT_FORMAT = 2


def mark_complete(ckpt: Path, step: int) -> None:
    """The last file of a checkpoint, written atomically once every rank has saved its part: a
    checkpoint without it (a save cut short by a second signal or a kill) is never resumed."""
    files = sorted(p.name for p in ckpt.iterdir() if p.name != COMPLETE_MARK)
    atomic_write_text(
        ckpt / COMPLETE_MARK, json.dumps({"step": step, "files": files}, indent=2) + "\n"
    )


def _is_complete(p: Path) -> bool:
    if (p / COMPLETE_MARK).is_file():
        try:
            return json.loads((p / COMPLETE_MARK).read_text()).get("step") == checkpoint_step(p)
        except (OSError, ValueError, AttributeError):
            return False
    # written before the mark existed: trainer state (parseable), adapter, scheduler, fingerprint
    try:
        if json.loads((p / FINGERPRINT).read_text()).get("checkpoint_format", 1) >= 2:
            return False  # a current checkpoint without its mark: the save was cut short
    except (OSError, ValueError, AttributeError):
        return False
    has_adapter = (p / "adapter_model.safetensors").is_file() or (p / "adapter_model.bin").is_file()
    if not (has_adapter and (p / "scheduler.pt").is_file() and (p / FINGERPRINT).is_file()):
        return False
    try:
        json.loads((p / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """Checkpoint folders that finished saving, oldest first."""
    if not output_dir.is_dir():
        return []
    found = []
    for p in output_dir.iterdir():
        step = checkpoint_step(p)
        if step is not None and p.is_dir() and _is_complete(p):
            found.append((step, p))
    return [p for _, p in sorted(found)]


def fingerprint(
    cfg: TrainConfigBase, kind: str, model_config_text: str, target_modules: Any
) -> dict[str, Any]:
    return {
        "kind": kind,
        "model": cfg.model,
        "model_config_sha256": hashlib.sha256(model_config_text.encode()).hexdigest(),
        "lora": {"r": cfg.lora.r, "alpha": cfg.lora.alpha, "target_modules": target_modules},
        "adapter": getattr(cfg, "adapter", None),
    }


def fingerprint_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    if old.get("model_config_sha256") != new.get("model_config_sha256"):
        out.append(f"base model differs ({old.get('model')} vs {new.get('model')})")
    for key in ("r", "alpha", "target_modules"):
        a, b = old.get("lora", {}).get(key), new.get("lora", {}).get(key)
        if a != b:
            out.append(f"lora.{key} differs ({a} vs {b})")
    if old.get("kind") != new.get("kind"):
        out.append(f"it is a {old.get('kind')} checkpoint, this is {new.get('kind')}")
    if old.get("adapter") != new.get("adapter"):
        out.append(f"adapter differs ({old.get('adapter')} vs {new.get('adapter')})")
    return out


def truncate_metrics(path: Path, upto_step: int) -> None:
    """Keep only the metrics up to `upto_step` (a resumed run logs the later steps again)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= upto_step:
                kept.append(line)
        except ValueError:
            continue  # a line cut short by a kill
    atomic_write_text(path, "".join(k + "\n" for k in kept))


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for dist in ("lexalign", "torch", "transformers", "trl", "peft", "accelerate", "datasets"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def _non_empty(output_dir: Path) -> bool:
    return output_dir.is_dir() and any(output_dir.iterdir())


def resolve_resume(
    cfg: TrainConfigBase, output_dir: Path, overwrite: bool, source: str, *, dry_run: bool = False
) -> tuple[Path | None, str]:
    """Where the run starts: (checkpoint to continue from or None, what the plan says). The
    same checks in a dry run, which only says what it would do. `--overwrite` starts over in
    every mode: a non-empty output_dir is removed first."""
    mode = cfg.resume_mode
    if overwrite and _non_empty(output_dir):
        if dry_run:
            return None, f"fresh: --overwrite would remove everything in {output_dir}"
        if is_main():
            shutil.rmtree(output_dir)
        return None, f"fresh (--overwrite removed the old {output_dir})"
    if mode is ResumeMode.NEVER:
        if _non_empty(output_dir):
            raise ConfigError(
                f"{source}: resume: never, but output_dir {output_dir} is not empty; pass --overwrite to start over, "
                "or set resume: auto to continue"
            )
        return None, "fresh"
    if mode is ResumeMode.AUTO:
        found = complete_checkpoints(output_dir)
        if found:
            return found[-1], f"resume from {found[-1]}"
        return None, "fresh" + (
            f" (no complete checkpoint in {output_dir})" if _non_empty(output_dir) else ""
        )
    path = Path(cfg.resume)
    if not path.is_dir() or checkpoint_step(path) is None:
        raise ConfigError(
            f"{source}: resume: {cfg.resume} is not a checkpoint-N folder ({path.absolute()} not found, "
            f"current folder {Path.cwd()}); use auto, never, or a checkpoint path"
        )
    if path not in complete_checkpoints(path.parent):
        raise ConfigError(
            f"{source}: resume: {cfg.resume} is incomplete (a save that did not finish); pick another checkpoint"
        )
    return path, f"resume from {path}"


def copy_adapter(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)


def write_run_json(output_dir: Path, record: dict[str, Any]) -> None:
    """run.json (docs/cli.md, outputs), rank 0 only."""
    if is_main():
        atomic_write_text(output_dir / "run.json", json.dumps(record, indent=2, default=str) + "\n")


def utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def append_metrics(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


def eval_summary(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """run.json's `eval`: first, best (and its step) and last eval loss over the whole run,
    resumed parts included (they are all in metrics.jsonl)."""
    evals = [
        (r["step"], r["eval_loss"])
        for r in rows
        if isinstance(r.get("eval_loss"), int | float) and isinstance(r.get("step"), int)
    ]
    if not evals:
        return None
    best_step, best_loss = min(evals, key=lambda e: (e[1], e[0]))
    return {
        "first_loss": evals[0][1],
        "best_loss": best_loss,
        "best_step": best_step,
        "last_loss": evals[-1][1],
        "evaluations": len(evals),
    }
