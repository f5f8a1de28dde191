"""Reading a YAML config file and validating it against a config model, with friendly,
located errors: the file, the key path (``models[1].allow_patterns``), what is wrong and the
fix; unknown keys get a "did you mean" suggestion; YAML syntax errors give line and column."""

from __future__ import annotations

import contextlib
import difflib
import os
import re
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


def _cut(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(err: dict[str, Any], model: type[BaseModel]) -> str:
    loc = tuple(err.get("loc", ()))
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        key = str(loc[-1])[:60] if loc else "?"
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
    if not loc and re.match(r"^[a-z_]+\.[a-z_.]+: ", msg):
        return msg  # a check across sections names its key itself
    value = err.get("input")
    shown = "" if isinstance(value, dict | list) or value is None else f" (got {_cut(value)})"
    if kind in ("literal_error",):
        return f"{_key_path(loc)}: {msg}{shown}"
    return f"{_key_path(loc)}: {msg}{shown}"


@contextlib.contextmanager
def _no_pydantic_plugins():
    """The config models are built on first use (defer_build), and building one makes pydantic
    look for plugins in every installed distribution's entry points (~14 ms of a CLI start);
    config validation uses none, so the search is switched off (pydantic's own switch) while
    they are built, for this call only."""
    name = "PYDANTIC_DISABLE_PLUGINS"
    before = os.environ.get(name)
    os.environ[name] = "__all__"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def parse_config(data: Any, model: type[BaseModel], source: str) -> Any:
    """Validate already-parsed YAML data against `model`; ConfigError on any problem."""
    if data is None:
        raise ConfigError(f"{source}: the file is empty; see config/ for an example")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping of keys, not a {type(data).__name__}"
        )
    try:
        with _no_pydantic_plugins():
            return model.model_validate(data)
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to be a config") from None
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


MAX_CONFIG_BYTES = 1 << 20


def _loader():
    """A safe YAML loader that refuses duplicate keys (naming both lines) and reads `2e-4` as a
    number (YAML 1.1 would make it a string)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader: Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(
                    f"duplicate key {str(key)[:60]!r} at line {line} (first at line {seen[key]}); "
                    "keep one — YAML would silently use the last"
                )
            seen[key] = line
        return loader.construct_mapping(node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    return Loader


def load_yaml(path: str | Path) -> Any:
    import stat

    import yaml

    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ConfigError(
            f"config file not found: {p} (looked at {p.absolute()}, current folder {Path.cwd()}); pass --config PATH (examples are in config/)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read it ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{p} is a folder; pass --config with a YAML file")
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{p} is not a regular file (a pipe or device?); pass a YAML file")
    if st.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{p} is {st.st_size:,} bytes; a config is at most {MAX_CONFIG_BYTES:,} — is it the right file?"
        )
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text; save the config as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read it ({exc.strerror})") from None
    try:
        return yaml.load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{p}: nested too deeply to be a config") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{p}{where}: invalid YAML: {problem}") from None


def load_config(path: str | Path, model: type[BaseModel]) -> Any:
    """Read and validate a YAML config file."""
    return parse_config(load_yaml(path), model, str(path))
