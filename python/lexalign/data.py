"""Datasets for training: load a file, a folder of files or a Hub dataset, check the configured
fields, and bring the rows into the shape trl expects (text / prompt+completion / messages for
SFT; prompt+chosen+rejected for DPO)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import PreferenceDataset, SFTDataset
from .errors import ConfigError

BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def _looks_like_path(path: str) -> bool:
    return (
        path.startswith((".", "/", "~"))
        or Path(path).suffix.lower() in BUILDERS
        or Path(path).exists()
    )


def load_rows(path: str, split: str, source: str):
    """A `datasets.Dataset` from a file, a folder of files, or a Hub dataset id."""
    import datasets

    datasets.disable_progress_bars()
    p = Path(path).expanduser()
    try:
        if p.is_file():
            builder = BUILDERS.get(p.suffix.lower())
            if builder is None:
                raise ConfigError(
                    f"{source}: dataset.path {path}: unsupported file type {p.suffix!r}; use .jsonl, .json, .csv or .parquet"
                )
            return datasets.load_dataset(builder, data_files=str(p), split="train")
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in BUILDERS and f.is_file())
            if not files:
                raise ConfigError(
                    f"{source}: dataset.path {path}: the folder holds no .jsonl/.json/.csv/.parquet files"
                )
            kinds = {BUILDERS[f.suffix.lower()] for f in files}
            if len(kinds) > 1:
                raise ConfigError(
                    f"{source}: dataset.path {path}: mixes {sorted(kinds)} files; keep one format per folder"
                )
            # Split by file name when the folder has e.g. train.jsonl and test.jsonl.
            named = [str(f) for f in files if f.stem.split("-")[0] == split]
            return datasets.load_dataset(
                kinds.pop(), data_files=named or [str(f) for f in files], split="train"
            )
        if _looks_like_path(path):
            raise ConfigError(
                f"{source}: dataset.path {path} does not exist; give a .jsonl/.json/.csv/.parquet file, a folder, or a Hub dataset id"
            )
        return datasets.load_dataset(path, split=split)
    except ConfigError:
        raise
    except ValueError as exc:
        if "Unknown split" in str(exc) or "split" in str(exc).lower():
            raise ConfigError(f"{source}: dataset.split {split!r}: {exc}") from None
        raise ConfigError(f"{source}: dataset.path {path}: {exc}") from None
    except FileNotFoundError as exc:
        raise ConfigError(f"{source}: dataset.path {path}: not found ({exc})") from None


def _require(columns: list[str], wanted: dict[str, str], source: str) -> None:
    for key, column in wanted.items():
        if column not in columns:
            raise ConfigError(
                f"{source}: dataset.{key}: column {column!r} is not in the dataset; its columns are: {', '.join(columns)}"
            )


def sft_dataset(spec: SFTDataset, source: str):
    """Rows renamed to trl's SFT columns: `text`, or `prompt`+`completion`, or `messages`."""
    ds = load_rows(spec.path, spec.split, source)
    cols = list(ds.column_names)
    if spec.format == "text":
        _require(cols, {"text_field": spec.text_field}, source)
        mapping = {spec.text_field: "text"}
    elif spec.format == "prompt_completion":
        _require(
            cols,
            {"prompt_field": spec.prompt_field, "completion_field": spec.completion_field},
            source,
        )
        mapping = {spec.prompt_field: "prompt", spec.completion_field: "completion"}
    else:
        _require(cols, {"messages_field": spec.messages_field}, source)
        mapping = {spec.messages_field: "messages"}
    ds = ds.select_columns(list(mapping))
    ds = ds.rename_columns({k: v for k, v in mapping.items() if k != v})
    if len(ds) == 0:
        raise ConfigError(f"{source}: dataset.path {spec.path}: no rows")
    return ds


def preference_dataset(spec: PreferenceDataset, source: str):
    ds = load_rows(spec.path, spec.split, source)
    cols = list(ds.column_names)
    wanted = {
        "prompt_field": spec.prompt_field,
        "chosen_field": spec.chosen_field,
        "rejected_field": spec.rejected_field,
    }
    _require(cols, wanted, source)
    mapping = {
        spec.prompt_field: "prompt",
        spec.chosen_field: "chosen",
        spec.rejected_field: "rejected",
    }
    ds = ds.select_columns(list(mapping)).rename_columns(
        {k: v for k, v in mapping.items() if k != v}
    )
    if len(ds) == 0:
        raise ConfigError(f"{source}: dataset.path {spec.path}: no rows")
    return ds


def _as_text(value: Any, tokenizer, add_generation_prompt: bool = False) -> str:
    if isinstance(value, list):  # chat messages
        return tokenizer.apply_chat_template(
            value, tokenize=False, add_generation_prompt=add_generation_prompt
        )
    return str(value)


def token_lengths(ds, tokenizer, kind: str) -> list[int]:
    """Token length of each training example (prompt+completion, or the longer of chosen and rejected)."""
    lengths = []
    for row in ds:
        if kind == "dpo":
            prompt = _as_text(
                row["prompt"], tokenizer, add_generation_prompt=isinstance(row["prompt"], list)
            )
            n = max(
                len(tokenizer(prompt + _as_text(row[c], tokenizer))["input_ids"])
                for c in ("chosen", "rejected")
            )
        elif "text" in row:
            n = len(tokenizer(row["text"])["input_ids"])
        elif "messages" in row:
            n = len(tokenizer(_as_text(row["messages"], tokenizer))["input_ids"])
        else:
            n = len(
                tokenizer(
                    _as_text(row["prompt"], tokenizer) + _as_text(row["completion"], tokenizer)
                )["input_ids"]
            )
        lengths.append(n)
    return lengths
