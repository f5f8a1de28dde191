"""YAML configs for the three CLIs: strict pydantic models and friendly, located errors.

Every error names the file, the key path (``models[1].allow_patterns``), what is wrong and the
fix; unknown keys get a "did you mean" suggestion; YAML syntax errors give line and column.
"""

from __future__ import annotations

import difflib
import re
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, defer_build=True)


def _check_repo_id(value: str) -> str:
    if not REPO_ID_RE.match(value) or "--" in value or ".." in value or value.endswith((".", "-")):
        raise ValueError(
            f"{value!r} is not a Hub repo id; use 'name' or 'owner/name' "
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
    models: list[RepoSpec] = Field(default_factory=list)
    datasets: list[RepoSpec] = Field(default_factory=list)

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


# ---------------------------------------------------------------------------------------------
# finetune / align
# ---------------------------------------------------------------------------------------------


class SFTDataset(Strict):
    path: str
    split: str = "train"
    text_field: str | None = None
    prompt_field: str | None = None
    completion_field: str | None = None
    messages_field: str | None = None

    @model_validator(mode="after")
    def _one_format(self) -> SFTDataset:
        pc = (self.prompt_field is not None, self.completion_field is not None)
        if pc[0] != pc[1]:
            raise ValueError(
                "prompt_field and completion_field go together: set both, or use text_field"
            )
        chosen = sum([self.text_field is not None, all(pc), self.messages_field is not None])
        if chosen > 1:
            raise ValueError(
                "set exactly one format: text_field, or prompt_field + completion_field, or messages_field"
            )
        if chosen == 0:
            self.text_field = "text"
        return self

    @property
    def format(self) -> str:
        if self.messages_field:
            return "messages"
        if self.prompt_field:
            return "prompt_completion"
        return "text"


class PreferenceDataset(Strict):
    path: str
    split: str = "train"
    prompt_field: str = "prompt"
    chosen_field: str = "chosen"
    rejected_field: str = "rejected"


class Lora(Strict):
    r: int = Field(8, ge=1, le=4096)
    alpha: float = Field(16, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: Literal["auto", "all-linear"] | list[str] = "auto"

    @field_validator("target_modules")
    @classmethod
    def _modules(cls, v: Any) -> Any:
        if isinstance(v, list) and not v:
            raise ValueError("is empty; use auto, or list module names such as [q_proj, v_proj]")
        return v


class Training(Strict):
    max_steps: int = Field(100, ge=1)
    learning_rate: float = Field(2.0e-4, gt=0, lt=1)
    batch_size: int = Field(4, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_length: int = Field(512, ge=8)
    seed: int = 42
    logging_steps: int = Field(10, ge=1)
    save_steps: int = Field(50, ge=1)
    warmup_steps: int = Field(0, ge=0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    gradient_checkpointing: bool = False
    save_total_limit: int | None = Field(None, ge=1)


class TrainConfigBase(Strict):
    model: str
    output_dir: str
    lora: Lora = Field(default_factory=Lora)
    training: Training = Field(default_factory=Training)
    quantization: Literal["none", "4bit", "8bit"] = "none"
    resume: str = "auto"

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        if not v.strip():
            raise ValueError(
                "is empty; give a local model folder (e.g. models/distilgpt2) or a Hub repo id"
            )
        return v

    @field_validator("resume")
    @classmethod
    def _resume(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("is empty; use auto, never, or the path of a checkpoint-N folder")
        return v


class FinetuneConfig(TrainConfigBase):
    output_dir: str = "outputs/sft"
    dataset: SFTDataset


class AlignConfig(TrainConfigBase):
    output_dir: str = "outputs/dpo"
    method: Literal["dpo"] = "dpo"
    beta: float = Field(0.1, gt=0)
    adapter: str | None = None
    dataset: PreferenceDataset


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _model_fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model reached by following `loc` (for "did you mean")."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(part)
        if field is None:
            return []
        current = _unwrap(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """list[X] / X | None → X (the first BaseModel found)."""
    for arg in typing.get_args(annotation) or ():
        inner = _unwrap(arg)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return annotation


def _describe(err: dict[str, Any], model: type[BaseModel]) -> str:
    loc = tuple(err.get("loc", ()))
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        known = _model_fields_at(model, loc[:-1])
        guess = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = (
            f"; did you mean '{guess[0]}'?"
            if guess
            else (f"; known keys: {', '.join(known)}" if known else "")
        )
        return f"{_key_path(loc)}: unknown key{hint}"
    if kind == "missing":
        return f"{_key_path(loc)}: required key is missing; add it"
    msg = str(err.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ")
    value = err.get("input")
    shown = "" if isinstance(value, dict | list) or value is None else f" (got {value!r})"
    if kind in ("literal_error",):
        return f"{_key_path(loc)}: {msg}{shown}"
    return f"{_key_path(loc)}: {msg}{shown}"


def parse_config(data: Any, model: type[BaseModel], source: str) -> Any:
    """Validate already-parsed YAML data against `model`; ConfigError on any problem."""
    if data is None:
        raise ConfigError(f"{source}: the file is empty; see config/ for an example")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping of keys, not a {type(data).__name__}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # Unknown keys first: a misspelt key usually explains a "missing" one.
        errors = sorted(
            exc.errors(include_url=False), key=lambda e: e.get("type") != "extra_forbidden"
        )
        first = _describe(errors[0], model)
        others = [_key_path(tuple(e.get("loc", ()))) for e in errors[1:]]
        more = (
            f" (also: {', '.join(others[:5])}{', …' if len(others) > 5 else ''})" if others else ""
        )
        raise ConfigError(f"{source}: {first}{more}") from None


def load_yaml(path: str | Path) -> Any:
    import yaml

    p = Path(path)
    if not p.exists():
        raise ConfigError(
            f"config file not found: {p}; pass --config PATH (examples are in config/)"
        )
    if p.is_dir():
        raise ConfigError(f"{p} is a folder; pass --config with a YAML file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read it ({exc})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{p}{where}: invalid YAML: {problem}") from None


def load_config(path: str | Path, model: type[BaseModel]) -> Any:
    """Read and validate a YAML config file."""
    return parse_config(load_yaml(path), model, str(path))
