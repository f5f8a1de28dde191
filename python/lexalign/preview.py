"""`lexalign preview --config CONFIG [--rows N|all] [--json]`: the first training rows as the
trainer gets them — the same code that builds the training rows (rows.py for finetune,
pairs.py for align), with the tokenizer and no model weights — and what is trained in them.

In a terminal the trained spans are highlighted; elsewhere they are marked `[[…]]`. `--json`
prints one object: {"rows": [{"index", "input_ids", "labels"}], "rows_total", "rows_dropped",
"tokens_total", "tokens_trained"} (labels −100 where not trained); align rows carry the chosen
sequence as input_ids/labels, and prompt_input_ids, chosen and rejected ({input_ids, labels})."""

from __future__ import annotations

import json
import sys
from typing import Any

from .console import Console
from .errors import ConfigError
from .kinds import TrainKind

IGNORE = -100
ALIGN_KEYS = {"method", "beta", "adapter"}


SFT_KEYS = {"text_field", "prompt_field", "completion_field", "messages_field", "format"}


def kind_of(config_path: str) -> TrainKind:
    """finetune or align, from the config's keys (align: method/beta/adapter, or chosen/rejected
    fields; finetune: a text/prompt/completion/messages field or a format), else from the data:
    rows with `chosen` and `rejected` columns are preference pairs."""
    from .config import load_yaml

    data = load_yaml(config_path)
    if not isinstance(data, dict):
        return TrainKind.FINETUNE
    dataset = data.get("dataset") if isinstance(data.get("dataset"), dict) else {}
    if ALIGN_KEYS & set(data) or {"chosen_field", "rejected_field"} & set(dataset):
        return TrainKind.ALIGN
    if SFT_KEYS & set(dataset) or not isinstance(dataset.get("path"), str):
        return TrainKind.FINETUNE
    from . import data as data_mod

    try:
        columns = data_mod.load_rows(
            dataset["path"], str(dataset.get("split", "train")), config_path
        )
    except ConfigError:
        return TrainKind.FINETUNE  # the finetune config's own checks say what is wrong
    pairs = {"chosen", "rejected"} <= set(columns.column_names)
    return TrainKind.ALIGN if pairs else TrainKind.FINETUNE


def labels(ids: list[int], mask: list[int]) -> list[int]:
    return [t if m else IGNORE for t, m in zip(ids, mask, strict=True)]


def run_preview(
    config_path: str, console: Console, *, rows: int | None, as_json: bool, kind: str | None
) -> int:
    from . import models
    from .config import load_config
    from .trainconfig import AlignConfig, FinetuneConfig

    k = TrainKind(kind) if kind else kind_of(config_path)
    cfg = load_config(config_path, FinetuneConfig if k is TrainKind.FINETUNE else AlignConfig)
    models.check_tokenizer(cfg.model, f"{config_path}: model")
    tokenizer = _tokenizer(cfg, config_path)
    built = _build(k, cfg, tokenizer, config_path)
    shown = sorted(built.rows, key=lambda r: r["index"])
    shown = shown if rows is None else shown[:rows]
    st = built.stats
    doc = {
        "kind": str(k),
        "loss_on": built.loss_on,
        "rows": [_row_json(r) for r in shown],
        "rows_total": st.rows_total,
        "rows_dropped": st.rows_dropped,
        "dropped": dict(st.dropped),
        "tokens_total": st.tokens_total,
        "tokens_trained": st.tokens_trained,
    }
    if as_json:
        sys.stdout.write(json.dumps(doc) + "\n")
        return 0
    _show(tokenizer, shown, doc, console)
    return 0


def _tokenizer(cfg, source: str):
    from transformers import AutoTokenizer

    from . import models

    try:
        tok = AutoTokenizer.from_pretrained(cfg.model)
    except (OSError, ValueError) as exc:
        raise models.load_error(cfg.model, exc, f"{source}: model") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _build(kind: TrainKind, cfg, tokenizer, source: str):
    """Every training row of the config, built as the run builds them."""
    from . import data

    ds, _ = data.datasets_for(kind.method, cfg.dataset, source, cfg.training.seed)
    if "messages" in ds.column_names and not tokenizer.chat_template:
        raise ConfigError(
            f"{source}: dataset.messages_field: the tokenizer of {cfg.model} has no chat template; use text_field or prompt_field + completion_field"
        )
    if kind is TrainKind.ALIGN:
        from . import pairs

        return _Shown.of_pairs(pairs.build(ds, tokenizer, cfg.training.max_length, source))
    from . import rows

    return _Shown.of_rows(
        rows.build(ds, tokenizer, cfg.training.loss_on, cfg.training.max_length, source)
    )


class _Shown:
    """Rows in one form for both kinds: index, sequences [(name, ids, mask)]."""

    def __init__(self, rows: list[dict[str, Any]], stats, loss_on: str) -> None:
        self.rows, self.stats, self.loss_on = rows, stats, loss_on

    @classmethod
    def of_rows(cls, built) -> _Shown:
        from .rows import INDEX, TRAINED

        rows = [{"index": r[INDEX], "seqs": [("", r["input_ids"], r[TRAINED])]} for r in built.rows]
        return cls(rows, built.stats, built.loss_on)

    @classmethod
    def of_pairs(cls, built) -> _Shown:
        rows = []
        for r in built.rows:
            prompt = r["prompt_input_ids"]
            seqs = [
                (
                    name,
                    prompt + r[f"{name}_input_ids"],
                    [0] * len(prompt) + [1] * len(r[f"{name}_input_ids"]),
                )
                for name in ("chosen", "rejected")
            ]
            rows.append({"index": r["index"], "prompt": prompt, "seqs": seqs})
        return cls(rows, built.stats, "assistant")


def _row_json(r: dict[str, Any]) -> dict[str, Any]:
    """index, input_ids, labels; an align row also has prompt_input_ids and chosen/rejected,
    each {input_ids, labels} (input_ids/labels at the top are the chosen sequence)."""
    (_, ids, mask), *rest = r["seqs"]
    out: dict[str, Any] = {"index": r["index"], "input_ids": ids, "labels": labels(ids, mask)}
    if "prompt" in r:
        out["prompt_input_ids"] = r["prompt"]
    for name, ids2, mask2 in r["seqs"] if rest else ():
        out[name] = {"input_ids": ids2, "labels": labels(ids2, mask2)}
    return out


def _show(tokenizer, shown: list[dict[str, Any]], doc: dict[str, Any], console: Console) -> None:
    """The rendered rows, trained spans highlighted (a terminal) or marked [[…]], then counts."""
    color = sys.stdout.isatty()
    if not color:
        print("trained spans are marked [[…]]")
    for r in shown:
        for name, ids, mask in r["seqs"]:
            print(f"── row {r['index']}" + (f" ({name})" if name else "") + " " + "─" * 40)
            print(_render(tokenizer, ids, mask, color))
    share = 100 * doc["tokens_trained"] / doc["tokens_total"] if doc["tokens_total"] else 0.0
    dropped = ", ".join(f"{n} {why}" for why, n in doc["dropped"].items()) or "none"
    console.table(
        f"{doc['kind']} rows (loss on {doc['loss_on']})",
        ["", ""],
        [
            ["rows", f"{doc['rows_total']} ({doc['rows_total'] - doc['rows_dropped']} trained)"],
            ["rows dropped", f"{doc['rows_dropped']} ({dropped})"],
            ["tokens", f"{doc['tokens_total']:,}"],
            ["tokens trained", f"{doc['tokens_trained']:,} ({share:.1f}%)"],
        ],
    )


def _render(tokenizer, ids: list[int], mask: list[int], color: bool) -> str:
    out, start = [], 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or mask[i] != mask[start]:
            text = tokenizer.decode(ids[start:i])
            if mask[start]:
                text = f"\x1b[1;30;42m{text}\x1b[0m" if color else f"[[{text}]]"
            out.append(text)
            start = i
    return "".join(out)
