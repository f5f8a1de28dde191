"""Finding the model and adapter a command names, before anything heavy loads: a name that is
meant as a local folder and does not exist fails at once (no 27 s of Hub retries), and a Hub
failure while loading becomes one line with its cause and the fix, never a urllib3 repr."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ConfigError, one_line, redact

DOWNLOADS_CONFIG = Path("config/downloads.yaml")
NOT_DOWNLOADED = "not found — run download first (config/downloads.yaml puts it in models/) or name a Hub repo id"


def _download_roots() -> set[str]:
    """First path parts that downloads land under: `models`, plus the output_dir and local_dirs
    of config/downloads.yaml when it is there (read cheaply; a broken file is ignored here)."""
    roots = {"models"}
    try:
        import yaml

        data = (
            yaml.safe_load(DOWNLOADS_CONFIG.read_text(encoding="utf-8"))
            if DOWNLOADS_CONFIG.is_file()
            else None
        )
    except Exception:  # noqa: BLE001 - only a hint; download validates its own config
        data = None
    if isinstance(data, dict):
        for value in [data.get("output_dir")] + [
            spec.get("local_dir")
            for kind in ("models", "datasets")
            for spec in (data.get(kind) or [])
            if isinstance(spec, dict)
        ]:
            if isinstance(value, str) and value.strip():
                roots.add(Path(value).parts[0])
    return roots


def looks_local(name: str) -> bool:
    """True when `name` is meant as a folder: it starts with /, . or ~, or its first part is an
    existing folder or where downloads go."""
    if name.startswith(("/", ".", "~")):
        return True
    parts = Path(name).parts
    return bool(parts) and (Path(parts[0]).is_dir() or parts[0] in _download_roots())


def where_looked(name: str) -> str:
    """The absolute path a relative name was looked for at, and the folder it is relative to
    (relative paths in configs and options are relative to the current folder)."""
    p = Path(name).expanduser()
    return (
        f"looked at {p.absolute()}; relative paths are relative to the current folder {Path.cwd()}"
    )


def check_model(name: str, where: str) -> None:
    """A local model folder must exist and hold config.json; a Hub id passes (checked on load)."""
    path = Path(name).expanduser()
    if not looks_local(name) and not path.exists():
        return
    if not path.exists():
        raise ConfigError(f"{where}: {name} {NOT_DOWNLOADED} ({where_looked(name)})")
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"{where}: {name} has no config.json; give a model folder (e.g. a download output) or a Hub repo id"
        )


def check_tokenizer(name: str, where: str) -> None:
    """What `preview` needs: a local folder with a tokenizer (weights and config.json are not
    read); a Hub id passes (checked on load)."""
    path = Path(name).expanduser()
    if not looks_local(name) and not path.exists():
        return
    if not path.exists():
        raise ConfigError(f"{where}: {name} {NOT_DOWNLOADED} ({where_looked(name)})")
    if not any((path / f).is_file() for f in ("tokenizer_config.json", "tokenizer.json")):
        raise ConfigError(
            f"{where}: {name} has no tokenizer (tokenizer_config.json or tokenizer.json); give a model folder"
        )


def check_adapter(name: str, where: str) -> Path:
    """A LexAlign output (or any peft adapter folder): it must hold adapter_config.json."""
    path = Path(name).expanduser()
    if not path.exists():
        raise ConfigError(
            f"{where}: {name} not found ({where_looked(name)}); point it at a finetune or align output_dir (e.g. outputs/sft)"
        )
    if not (path / "adapter_config.json").is_file():
        raise ConfigError(
            f"{where}: {name} has no adapter_config.json; point it at a finetune or align output_dir"
        )
    return path


def adapter_base(adapter_dir: Path, base: str | None, where: str) -> str:
    """The base model an adapter was trained on: `base` when given, else run.json's base_model,
    else adapter_config.json's base_model_name_or_path; checked like a configured model."""
    if base is None:
        run_json = adapter_dir / "run.json"
        try:
            run = json.loads(run_json.read_text()) if run_json.is_file() else {}
            cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{where}: cannot read {adapter_dir}: {one_line(exc)}") from None
        base = run.get("base_model") or cfg.get("base_model_name_or_path")
        if not base:
            raise ConfigError(
                f"{where}: {adapter_dir} does not name its base model; pass --base PATH"
            )
    path = Path(base).expanduser()
    if looks_local(base) and not path.exists():
        raise ConfigError(
            f"{where}: base model {base} {NOT_DOWNLOADED}; or pass --base PATH (adapter: {adapter_dir})"
        )
    if path.exists() and not (path / "config.json").is_file():
        raise ConfigError(f"{where}: the base model {base} has no config.json; pass --base PATH")
    return base


def load_error(name: str, exc: BaseException, where: str) -> ConfigError:
    """One line for a failure to load `name` (config, tokenizer or weights) from disk or the Hub."""
    text = redact(one_line(exc, 2000))
    low = text.lower()
    if any(
        s in low
        for s in (
            "offline",
            "connection",
            "max retries",
            "name resolution",
            "timed out",
            "failed to resolve",
        )
    ):
        cause = "the Hub cannot be reached"
        fix = "download it first (download.py) and point model: at the folder, or set HF_ENDPOINT / a proxy and CA bundle"
    elif "401" in low or "403" in low or "gated" in low or "unauthorized" in low:
        cause = "the Hub refused access (gated or private repo)"
        fix = "accept its licence on the Hub and pass HF_TOKEN"
    elif "404" in low or "not a valid model identifier" in low or "repository not found" in low:
        cause = "no such repo on the Hub"
        fix = "check the repo id, or run download first and give the folder"
    else:
        cause = text[:300]
        fix = "check the folder or repo id"
    return ConfigError(f"{where}: cannot load {name}: {cause}; {fix}")
