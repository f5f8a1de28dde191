"""Datasets for training: load a file, a folder of files or a Hub dataset, check the configured
fields, and bring the rows into the shape trl expects (text / prompt+completion / messages for
SFT; prompt+chosen+rejected for DPO)."""

from __future__ import annotations

import math
from pathlib import Path

from .errors import ConfigError, one_line
from .models import where_looked
from .trainconfig import PreferenceDataset, SFTDataset

BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def _looks_like_path(path: str) -> bool:
    return (
        path.startswith((".", "/", "~"))
        or Path(path).suffix.lower() in BUILDERS
        or Path(path).exists()
    )


def load_rows(path: str, split: str, source: str, *, key: str = "split", strict: bool = False):
    """A `datasets.Dataset` from a file, a folder of files, or a Hub dataset id. `key` names the
    config key in messages; `strict` (for eval_split) refuses a file, or a folder without files
    named for the split, instead of falling back to every file."""
    import datasets

    datasets.disable_progress_bars()
    p = Path(path).expanduser()
    try:
        if p.is_file():
            if strict:
                raise ConfigError(
                    f"{source}: dataset.{key} {split!r}: {path} is a single file, which has no splits; "
                    "use eval_path for another file, or eval_fraction to hold out rows"
                )
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
            if strict and not named:
                names = ", ".join(f.name for f in files[:8])
                raise ConfigError(
                    f"{source}: dataset.{key} {split!r}: no file in {path} is named for that split "
                    f"(e.g. {split}.jsonl); its files: {names}"
                )
            return datasets.load_dataset(
                kinds.pop(), data_files=named or [str(f) for f in files], split="train"
            )
        if _looks_like_path(path):
            raise ConfigError(
                f"{source}: dataset.{'eval_path' if key == 'eval_path' else 'path'} {path} does not exist ({where_looked(path)}); give a .jsonl/.json/.csv/.parquet file, a folder, or a Hub dataset id"
            )
        return datasets.load_dataset(path, split=split)
    except ConfigError:
        raise
    except ValueError as exc:
        if "Unknown split" in str(exc) or "split" in str(exc).lower():
            raise ConfigError(f"{source}: dataset.{key} {split!r}: {one_line(exc)}") from None
        raise ConfigError(f"{source}: dataset.path {path}: {one_line(exc)}") from None
    except FileNotFoundError as exc:
        raise ConfigError(f"{source}: dataset.path {path}: not found ({exc})") from None


def _require(columns: list[str], wanted: dict[str, str], source: str, where: str) -> None:
    for key, column in wanted.items():
        if column not in columns:
            raise ConfigError(
                f"{source}: dataset.{key}: column {column!r} is not in the {where}; its columns are: {', '.join(columns)}"
            )


def _shape(ds, mapping: dict[str, str], source: str, where: str, path: str):
    """Keep the configured columns under trl's names, with each row's position in the file
    (`row_index`); refuse an empty dataset. Alpaca rows become conversations."""
    from .rows import INDEX

    if len(ds) == 0:
        raise ConfigError(f"{source}: dataset {path}: the {where} has no rows")
    ds = ds.add_column(INDEX, list(range(len(ds))))
    if mapping == ALPACA:
        return _alpaca(ds, source, where)
    _require(list(ds.column_names), mapping, source, where)
    columns = {
        column: trl_name
        for column, trl_name in zip(mapping.values(), _TRL[tuple(mapping)], strict=True)
    }
    return ds.select_columns([*columns, INDEX]).rename_columns(
        {k: v for k, v in columns.items() if k != v}
    )


ALPACA = {"format": "alpaca"}


def _alpaca(ds, source: str, where: str):
    """`format: alpaca`: instruction, input, output, optional system → a `messages` column."""
    from . import chat
    from .rows import INDEX

    missing = [c for c in ("instruction", "output") if c not in ds.column_names]
    if missing:
        raise ConfigError(
            f"{source}: dataset.format: alpaca needs the columns instruction and output (input and "
            f"system optional); the {where} lacks {missing[0]!r}; its columns are: {', '.join(ds.column_names)}"
        )
    rows = [chat.from_alpaca(row, row[INDEX], source) for row in ds]
    return ds.select_columns([INDEX]).add_column("messages", rows)


# config key → trl column, per format
_TRL = {
    ("text_field",): ("text",),
    ("prompt_field", "completion_field"): ("prompt", "completion"),
    ("messages_field",): ("messages",),
    ("prompt_field", "chosen_field", "rejected_field"): ("prompt", "chosen", "rejected"),
}


def _sft_mapping(spec: SFTDataset) -> dict[str, str]:
    if spec.format == "alpaca":
        return ALPACA
    if spec.format == "text":
        return {"text_field": spec.text_field}
    if spec.format == "prompt_completion":
        return {"prompt_field": spec.prompt_field, "completion_field": spec.completion_field}
    return {"messages_field": spec.messages_field}


def _preference_mapping(spec: PreferenceDataset) -> dict[str, str]:
    return {
        "prompt_field": spec.prompt_field,
        "chosen_field": spec.chosen_field,
        "rejected_field": spec.rejected_field,
    }


def sft_dataset(spec: SFTDataset, source: str):
    """Rows renamed to trl's SFT columns: `text`, or `prompt`+`completion`, or `messages`."""
    ds = load_rows(spec.path, spec.split, source)
    return _shape(ds, _sft_mapping(spec), source, "dataset", spec.path)


def preference_dataset(spec: PreferenceDataset, source: str):
    ds = load_rows(spec.path, spec.split, source)
    return _shape(ds, _preference_mapping(spec), source, "dataset", spec.path)


def datasets_for(kind: str, spec: SFTDataset | PreferenceDataset, source: str, seed: int):
    """(train, eval or None) for a run: `kind` is "sft" or "dpo". The evaluation rows come from
    eval_path, eval_split or a seeded eval_fraction hold-out of the training rows."""
    mapping = _preference_mapping(spec) if kind == "dpo" else _sft_mapping(spec)
    train = _shape(load_rows(spec.path, spec.split, source), mapping, source, "dataset", spec.path)
    if spec.eval_path is not None:
        rows = load_rows(spec.eval_path, spec.split, source, key="eval_path")
        return train, _shape(rows, mapping, source, "eval_path data", spec.eval_path)
    if spec.eval_split is not None:
        rows = load_rows(spec.path, spec.eval_split, source, key="eval_split", strict=True)
        return train, _shape(rows, mapping, source, f"eval_split {spec.eval_split!r}", spec.path)
    if spec.eval_fraction is not None:
        n_eval = math.ceil(len(train) * spec.eval_fraction)
        if len(train) - n_eval < 1:
            raise ConfigError(
                f"{source}: dataset.eval_fraction {spec.eval_fraction}: the dataset has {len(train)} row(s), "
                "too few to hold any out; add rows or use eval_path"
            )
        parts = train.train_test_split(test_size=n_eval, seed=seed, shuffle=True)
        return parts["train"], parts["test"]
    return train, None
