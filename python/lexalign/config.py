"""YAML configs for the CLIs: strict pydantic models and friendly, located errors.

Every error names the file, the key path (``models[1].allow_patterns``), what is wrong and the
fix; unknown keys get a "did you mean" suggestion; YAML syntax errors give line and column.

Here: the shared rules and the download config. The finetune and align models live in
trainconfig.py and are importable from here too (`from lexalign.config import FinetuneConfig`,
module `__getattr__`), imported only when asked for: a download's start-up does not define
the training models.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")


class Strict(BaseModel):
    # strict: no silent coercion (`retries: yes` is not 1, `max_steps: "5"` is not 5); floats
    # still take integers.
    model_config = ConfigDict(extra="forbid", validate_default=True, defer_build=True, strict=True)


def _check_repo_id(value: str) -> str:
    if not REPO_ID_RE.match(value) or "--" in value or ".." in value or value.endswith((".", "-")):
        raise ValueError(
            f"{value[:60]!r}{'…' if len(value) > 60 else ''} is not a Hub repo id; use 'name' or 'owner/name' "
            "(letters, digits, '-', '_', '.'), e.g. distilbert/distilgpt2"
        )
    return value


# ---------------------------------------------------------------------------------------------
# download
# ---------------------------------------------------------------------------------------------


class RepoSpec(Strict):
    repo_id: str
    revision: str | None = None
    allow_patterns: list[str] | None = None
    ignore_patterns: list[str] | None = None
    local_dir: str | None = None

    @field_validator("repo_id")
    @classmethod
    def _repo(cls, v: str) -> str:
        return _check_repo_id(v)

    @field_validator("revision")
    @classmethod
    def _revision(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or any(c.isspace() for c in v)):
            raise ValueError("revision must be a branch, tag or commit without spaces, e.g. main")
        return v

    @field_validator("allow_patterns")
    @classmethod
    def _allow(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and len(v) == 0:
            raise ValueError(
                "is empty, so nothing would be downloaded; remove the key to download every file"
            )
        return v

    @field_validator("allow_patterns", "ignore_patterns")
    @classmethod
    def _patterns(cls, v: list[str] | None) -> list[str] | None:
        for p in v or []:
            if not p.strip():
                raise ValueError("contains an empty pattern; use globs such as '*.json'")
        return v

    @field_validator("local_dir")
    @classmethod
    def _local_dir(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError(
                "is empty; give a folder, or remove the key for <output_dir>/<repo name>"
            )
        return v


class DownloadConfig(Strict):
    output_dir: str = "models"
    retries: int = Field(5, ge=0, le=100, description="per file, on transient errors")
    timeout_s: float = Field(60, gt=0, le=3600, description="per request")
    deadline_s: float = Field(3600, gt=0, description="whole run")
    max_workers: int = Field(8, ge=1, le=64, description="connections at once, all files and repos")
    max_connections_per_file: int = Field(
        8, ge=1, le=64, description="ranged connections for one file larger than a part"
    )
    part_size_mb: float = Field(
        16, ge=0.25, le=4096, description="size of one ranged request, in MB (2**20 bytes)"
    )
    use_xet: bool = False
    # `[]`, not default_factory=list: pydantic copies a mutable default per instance, and a
    # builtin factory costs the first validation an `inspect.signature` that compiles
    # tokenize's regular expressions (~4 ms of a download's start)
    models: list[RepoSpec] = []
    datasets: list[RepoSpec] = []

    @model_validator(mode="after")
    def _something_to_do(self) -> DownloadConfig:
        if not self.models and not self.datasets:
            raise ValueError(
                "models and datasets are both empty: list at least one repo under `models:` or `datasets:`"
            )
        seen: dict[str, str] = {}
        for kind, specs in (("models", self.models), ("datasets", self.datasets)):
            for i, spec in enumerate(specs):
                target = str(Path(self.local_dir_for(spec, kind)).resolve())
                where = f"{kind}[{i}]"
                if target in seen:
                    raise ValueError(
                        f"{where} and {seen[target]} download into the same folder {target}; give one a different local_dir"
                    )
                seen[target] = where
        return self

    def part_bytes(self) -> int:
        return int(self.part_size_mb * (1 << 20))

    def jobs(self) -> list[tuple[RepoSpec, str, Path]]:
        """(spec, repo type, local folder) for every configured repo, models first."""
        out = []
        for kind, specs in (("models", self.models), ("datasets", self.datasets)):
            repo_type = "model" if kind == "models" else "dataset"
            out.extend((s, repo_type, Path(self.local_dir_for(s, kind))) for s in specs)
        return out

    def local_dir_for(self, spec: RepoSpec, kind: str) -> str:
        if spec.local_dir:
            return spec.local_dir
        name = spec.repo_id.split("/")[-1]
        return str(Path(self.output_dir) / (name if kind == "models" else f"datasets/{name}"))


# Loading lives in configfile.py; re-exported for the commands and tests.
from .configfile import load_config, load_yaml, parse_config  # noqa: E402

_TRAIN_NAMES = (
    "EvalSource",
    "SFTDataset",
    "PreferenceDataset",
    "Lora",
    "Training",
    "TrainConfigBase",
    "FinetuneConfig",
    "AlignConfig",
)


def __getattr__(name: str) -> Any:
    if name in _TRAIN_NAMES:
        from . import trainconfig

        return getattr(trainconfig, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [  # noqa: F822 - the training names come from __getattr__ (trainconfig.py)
    "AlignConfig",
    "FinetuneConfig",
    "DownloadConfig",
    "RepoSpec",
    "Strict",
    "load_config",
    "load_yaml",
    "parse_config",
]
