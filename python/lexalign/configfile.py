"""Reading a YAML config file and validating it against a config model, with friendly,
located errors: the file, the key path (``models[1].allow_patterns``), what is wrong and the
fix; unknown keys get a "did you mean" suggestion; YAML syntax errors give line and column."""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import ConfigError

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
