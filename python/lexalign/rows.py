"""Training rows as the trainer gets them: token ids and, per token, whether the loss is computed
on it (`assistant_masks`, which trl's collator turns into labels = −100 elsewhere, and which
trl's packing carries along). One function builds them for finetune, and `preview` shows
exactly its output.

What is trained (`training.loss_on`, `auto` by default):
- `assistant` (auto for `messages_field` and `format: alpaca`): every assistant message's
  content and the end-of-turn token after it (labels.py);
- `completion` (auto for `prompt_field` + `completion_field`): the completion and the EOS
  token appended to it;
- `all` (auto for `text_field`): every token (text rows get EOS appended, as trl does).
The first token of a row is never trained (nothing predicts it). Rows are cut to their first
`max_length` tokens; a row left with no trained token (no assistant turn, an empty
conversation, its answer cut off) is dropped and counted by reason."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from . import chat
from .errors import ConfigError
from .labels import Encoded, Renderer

INDEX = "lexalign_row_index"  # the row's position in the dataset file (data.py adds it)
TRAINED = "assistant_masks"  # the column trl's collator reads (1 = trained)

LOSS_ON = ("auto", "assistant", "completion", "all")
FITS = {  # what each data format can be trained on
    "text": ("all",),
    "prompt_completion": ("completion", "all"),
    "messages": ("assistant", "all"),
}
AUTO = {"text": "all", "prompt_completion": "completion", "messages": "assistant"}


def resolve_loss_on(loss_on: str, fmt: str, where: str) -> str:
    """`auto` made concrete for a data format; a value the format cannot have is exit 2."""
    if loss_on == "auto":
        return AUTO[fmt]
    if loss_on not in FITS[fmt]:
        fields = {
            "text": "text_field",
            "prompt_completion": "prompt_field + completion_field",
            "messages": "messages_field (or format: alpaca)",
        }[fmt]
        raise ConfigError(
            f"{where}: training.loss_on: {loss_on} does not fit {fields} data; "
            f"use {' or '.join(('auto', *FITS[fmt]))}"
        )
    return loss_on


def data_format(columns: list[str]) -> str:
    if "messages" in columns:
        return "messages"
    if "prompt" in columns and "completion" in columns:
        return "prompt_completion"
    return "text"


@dataclass
class Stats:
    """What the rows hold: counts for the plan, the summary and `preview`."""

    rows_total: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason -> rows
    tokens_total: int = 0
    tokens_trained: int = 0
    truncated: int = 0  # rows longer than max_length (cut)
    lengths: list[int] = field(default_factory=list)  # before the cut, rows kept

    @property
    def rows_dropped(self) -> int:
        return sum(self.dropped.values())

    def dropped_text(self) -> str:
        return ", ".join(f"{n} {why}" for why, n in self.dropped.most_common()) or "none"

    def trained_share(self) -> float:
        return self.tokens_trained / self.tokens_total if self.tokens_total else 0.0

    def plan(self, loss_on: str) -> dict[str, Any]:
        """What the plan, the summary and run.json say of the rows."""
        return {
            "loss_on": loss_on,
            "rows_total": self.rows_total,
            "rows_dropped": self.rows_dropped,
            "dropped": dict(self.dropped),
            "tokens_total": self.tokens_total,
            "tokens_trained": self.tokens_trained,
            "trained_share": round(self.trained_share(), 4),
            "lengths": self.lengths,
            "truncated": self.truncated,
        }


@dataclass
class Built:
    rows: list[dict[str, Any]]  # input_ids, assistant_masks, row_index
    stats: Stats
    loss_on: str


class RowBuilder:
    """Encodes rows of one dataset (one format, one conversation shape) for one tokenizer."""

    def __init__(self, tokenizer, loss_on: str, max_length: int, where: str) -> None:
        self.tok = tokenizer
        self.loss_on = loss_on
        self.max_length = max_length
        self.where = where
        self.renderer = Renderer(tokenizer, where)
        self.shape: str | None = None  # the conversations' shape, from the first one

    def conversation(self, value: Any, row: int) -> list[dict[str, str]]:
        if self.shape is None:
            self.shape = chat.shape_of(value)
        return chat.normalize(value, row, self.shape, self.where)

    def encode(self, fmt: str, row: dict[str, Any], index: int) -> Encoded | str:
        """The row's tokens and mask, or why it has nothing to train."""
        if fmt == "messages":
            return self._messages(self.conversation(row["messages"], index), index, first=0)
        if fmt == "prompt_completion":
            if isinstance(row["prompt"], list) or isinstance(row["completion"], list):
                prompt = self.conversation(row["prompt"], index)
                completion = self.conversation(row["completion"], index)
                return self._messages(prompt + completion, index, first=len(prompt))
            return self._prompt_completion(str(row["prompt"]), str(row["completion"]))
        return self._text(str(row["text"]))

    def _messages(self, messages: list[dict], index: int, first: int) -> Encoded | str:
        if not messages:
            return "empty conversation"
        if self.loss_on == "all":
            return self.renderer.encode(self.renderer.render(messages, index), None)
        if not any(m["role"] == "assistant" for m in messages[first:]):
            return "no assistant turn"
        text, spans = self.renderer.spans(messages, index, first)
        return self.renderer.encode(text, spans)

    def _eos(self, text: str) -> str:
        eos = self.tok.eos_token
        return text + eos if eos and not text.endswith(eos) else text

    def _text(self, text: str) -> Encoded | str:
        ids = list(self.tok(self._eos(text))["input_ids"])
        return Encoded(ids, [0] + [1] * (len(ids) - 1)) if ids else "empty text"

    def _prompt_completion(self, prompt: str, completion: str) -> Encoded | str:
        """As trl tokenizes it: the prompt, and prompt + completion + EOS."""
        prompt_ids = list(self.tok(prompt)["input_ids"])
        ids = list(self.tok(self._eos(prompt + completion))["input_ids"])
        if self.loss_on == "all":
            return Encoded(ids, [0] + [1] * (len(ids) - 1))
        n = common_prefix(prompt_ids, ids)  # trl's split; the prompt's tokens when they agree
        mask = [0] * n + [1] * (len(ids) - n)
        if mask:
            mask[0] = 0
        return Encoded(ids, mask)

    def cut(self, enc: Encoded) -> tuple[Encoded, bool]:
        if len(enc.input_ids) <= self.max_length:
            return enc, False
        return Encoded(enc.input_ids[: self.max_length], enc.mask[: self.max_length]), True


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens two sequences share."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


CUT_REASON = {
    "assistant": "assistant tokens cut off by max_length",
    "completion": "completion cut off by max_length",
    "all": "nothing left to train after max_length",
}


def build(
    ds, tokenizer, loss_on: str, max_length: int, where: str, limit: int | None = None
) -> Built:
    """Every row of `ds` (a datasets.Dataset with trl's columns and `row_index`) encoded; with
    `limit`, stop once that many rows are kept (preview of the first rows)."""
    fmt = data_format(list(ds.column_names))
    concrete = resolve_loss_on(loss_on, fmt, where)
    b = RowBuilder(tokenizer, concrete, max_length, where)
    stats, rows = Stats(), []
    for n, row in enumerate(ds):
        index = int(row.get(INDEX, n))
        stats.rows_total += 1
        enc = b.encode(fmt, row, index)
        if isinstance(enc, str):
            stats.dropped[enc] += 1
            continue
        length = len(enc.input_ids)
        enc, was_cut = b.cut(enc)
        if not any(enc.mask):
            stats.dropped[CUT_REASON[concrete] if was_cut else "no token to train"] += 1
            continue
        stats.truncated += was_cut
        stats.lengths.append(length)
        stats.tokens_total += len(enc.input_ids)
        stats.tokens_trained += sum(enc.mask)
        rows.append({"input_ids": enc.input_ids, TRAINED: enc.mask, INDEX: index})
        if limit is not None and len(rows) >= limit:
            break
    return Built(rows, stats, concrete)


def to_dataset(built: Built, where: str, what: str = "dataset"):
    """The rows as a datasets.Dataset for the trainer (no `row_index`); none left is exit 2."""
    import datasets

    if not built.rows:
        raise ConfigError(
            f"{where}: every row of the {what} was dropped ({built.stats.dropped_text()}): nothing to train "
            f"with loss_on: {built.loss_on}; check the data with `python -m lexalign preview --config …`"
        )
    return datasets.Dataset.from_dict(
        {
            "input_ids": [r["input_ids"] for r in built.rows],
            TRAINED: [r[TRAINED] for r in built.rows],
        }
    )
