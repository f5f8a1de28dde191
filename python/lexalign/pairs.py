"""Preference pairs as DPO gets them: `prompt_input_ids`, `chosen_input_ids`,
`rejected_input_ids`, where DPO's loss covers every chosen/rejected token.

- Conversational pairs (`prompt` a list of messages, OpenAI or ShareGPT shape; `chosen` and
  `rejected` one assistant message, or its text): the model's chat template renders prompt +
  answer, and the answer's tokens are its content and the end-of-turn token after it (labels.py,
  the finetune rule) — not the template's text after the end-of-turn token, not a header.
- Plain pairs (text): as trl tokenizes them, the answer with EOS appended.
Rows are cut to their first `max_length` tokens (prompt first); a pair with nothing left of an
answer is dropped and counted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .rows import INDEX, RowBuilder, Stats, common_prefix


@dataclass
class BuiltPairs:
    rows: list[dict[str, Any]]  # index, prompt_input_ids, chosen_input_ids, rejected_input_ids
    stats: Stats


class PairBuilder:
    def __init__(self, tokenizer, max_length: int, where: str) -> None:
        self.rb = RowBuilder(tokenizer, "assistant", max_length, where)
        self.tok = tokenizer
        self.where = where

    def answer(self, value: Any, index: int, which: str) -> list[dict[str, str]]:
        if isinstance(value, str):
            return [{"role": "assistant", "content": value}]
        messages = self.rb.conversation(value, index)
        if len(messages) != 1 or messages[0]["role"] != "assistant":
            raise ConfigError(
                f"{self.where}: row {index}: {which} must be one assistant message (or its text), "
                f"not {[m['role'] for m in messages]}"
            )
        return messages

    def encode(self, row: dict[str, Any], index: int) -> dict[str, list[int]] | str:
        if isinstance(row["prompt"], list):
            if not self.tok.chat_template:
                raise ConfigError(
                    f"{self.where}: row {index}: conversational pairs need a model with a chat template, "
                    "and this tokenizer has none; use plain-text prompt/chosen/rejected"
                )
            prompt = self.rb.conversation(row["prompt"], index)
            if not prompt:
                return "empty conversation"
            got = {
                w: self._conversational(prompt, self.answer(row[w], index, w), index)
                for w in ("chosen", "rejected")
            }
            (pc, ac), (pr, ar) = got["chosen"], got["rejected"]
            n = common_prefix(pc, pr)  # the tokenizer may join the prompt's last token differently
            return {
                "prompt_input_ids": pc[:n],
                "chosen_input_ids": pc[n:] + ac,
                "rejected_input_ids": pr[n:] + ar,
            }
        prompt_ids = list(self.tok(str(row["prompt"]), add_special_tokens=False)["input_ids"])
        out = {"prompt_input_ids": prompt_ids}
        for which in ("chosen", "rejected"):
            ids = list(self.tok(str(row[which]), add_special_tokens=False)["input_ids"])
            out[f"{which}_input_ids"] = ids + [self.tok.eos_token_id]
        return out

    def _conversational(self, prompt, answer, index: int) -> tuple[list[int], list[int]]:
        """(prompt ids, answer ids): the rendering of prompt + answer, split where the answer's
        content starts, up to its end-of-turn token."""
        r = self.rb.renderer
        text, spans = r.spans(prompt + answer, index, first=len(prompt))
        enc = r.encode(text, spans)
        trained = [i for i, m in enumerate(enc.mask) if m]
        if not trained:
            return enc.input_ids, []
        return enc.input_ids[: trained[0]], enc.input_ids[trained[0] : trained[-1] + 1]

    def cut(self, pair: dict[str, list[int]]) -> tuple[dict[str, list[int]] | str, bool]:
        n = self.rb.max_length - len(pair["prompt_input_ids"])
        if n <= 0:
            return "prompt fills max_length", True
        was_cut = any(len(pair[f"{w}_input_ids"]) > n for w in ("chosen", "rejected"))
        out = dict(pair)
        for w in ("chosen", "rejected"):
            out[f"{w}_input_ids"] = pair[f"{w}_input_ids"][:n]
        return out, was_cut


def build(ds, tokenizer, max_length: int, where: str) -> BuiltPairs:
    b = PairBuilder(tokenizer, max_length, where)
    stats, rows = Stats(), []
    for n, row in enumerate(ds):
        index = int(row.get(INDEX, n))
        stats.rows_total += 1
        pair = b.encode(row, index)
        if isinstance(pair, str):
            stats.dropped[pair] += 1
            continue
        length = len(pair["prompt_input_ids"]) + max(
            len(pair["chosen_input_ids"]), len(pair["rejected_input_ids"])
        )
        cut, was_cut = b.cut(pair)
        if isinstance(cut, str):
            stats.dropped[cut] += 1
            continue
        if not cut["chosen_input_ids"] or not cut["rejected_input_ids"]:
            stats.dropped["an answer with nothing to train"] += 1
            continue
        stats.truncated += was_cut
        stats.lengths.append(length)
        for w in ("chosen", "rejected"):
            stats.tokens_total += len(cut["prompt_input_ids"]) + len(cut[f"{w}_input_ids"])
            stats.tokens_trained += len(cut[f"{w}_input_ids"])
        rows.append({"index": index, **cut})
    return BuiltPairs(rows, stats)


def to_dataset(built: BuiltPairs, where: str, what: str = "dataset"):
    import datasets

    if not built.rows:
        raise ConfigError(
            f"{where}: every pair of the {what} was dropped ({built.stats.dropped_text()}): nothing to train"
        )
    keys = ("prompt_input_ids", "chosen_input_ids", "rejected_input_ids")
    return datasets.Dataset.from_dict({k: [r[k] for r in built.rows] for k in keys})
