"""Which tokens a row trains on, from the model's own chat template — whatever it is, with or
without `{% generation %}` markers.

A conversation is rendered twice: as it is, and with every assistant message's content
replaced by a unique marker. The markers say where each assistant content sits in the
rendering (the real rendering must be the marked one with each marker replaced by the content
as the template wrote it: as is, or trimmed). The trained characters are each assistant
content and the end-of-turn token the template writes right after it (`<|im_end|>`,
`<|eot_id|>`, `</s>`, `<end_of_turn>`, `<|end|>` …: the first added token after it). The
rendering is tokenized once, as at inference, and a token is trained when its characters
overlap a trained span. Everything else — system, user and tool content, role headers, a
default system prompt the template inserts, BOS — is not trained.

A template must render each conversation as a stable prefix of its continuation: the prompt
for assistant message i (messages before it, with the generation prompt) and the rendering of
the messages up to i (through its end-of-turn token) must both begin the whole rendering.
Otherwise training would show the model contexts it never sees when it generates; that, and
content the template drops or rewrites, is a config error naming the row (exit 2)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError


@dataclass
class Encoded:
    """One row as the trainer gets it: token ids and, per token, 1 when it is trained."""

    input_ids: list[int]
    mask: list[int]


class TemplateProblem(ConfigError):
    pass


def _marker(i: int) -> str:
    return f"\ue000lexalign-{i}\ue001"


class Renderer:
    """Renders conversations with one tokenizer's chat template and finds what to train."""

    def __init__(self, tokenizer, where: str) -> None:
        self.tok = tokenizer
        self.where = where
        added = [t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values()]
        specials = set(added) | set(getattr(tokenizer, "all_special_tokens", []) or [])
        self.closers = sorted((s for s in specials if s and s.strip()), key=len, reverse=True)

    # -- rendering -------------------------------------------------------------------------------

    def render(self, messages: list[dict], row: int, generation: bool = False) -> str:
        try:
            return self.tok.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=generation
            )
        except Exception as exc:  # noqa: BLE001 - jinja's raise_exception and template bugs
            from .errors import one_line

            raise TemplateProblem(
                f"{self.where}: row {row}: the model's chat template cannot render this conversation "
                f"(roles {[m['role'] for m in messages]}): {one_line(exc, 200)}"
            ) from None

    def marked(self, messages: list[dict]) -> list[dict]:
        return [
            {**m, "content": _marker(i)} if m["role"] == "assistant" else m
            for i, m in enumerate(messages)
        ]

    # -- finding the trained spans ---------------------------------------------------------------

    def spans(self, messages: list[dict], row: int, first: int = 0) -> tuple[str, list[tuple]]:
        """(rendering, trained character spans) for the assistant messages at index ≥ `first`."""
        full = self.render(messages, row)
        marked = self.render(self.marked(messages), row)
        wanted = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        places = self._locate(full, marked, messages, wanted, row)
        out = []
        for i in wanted:
            start, end = places[i]
            closer = self._closer(full, end, row, i)
            self._check_prefix(messages, marked, i, row)
            if i >= first:
                out.append((start, end))
                out.append(closer)
        return full, out

    def _locate(self, full: str, marked: str, messages, wanted, row) -> dict[int, tuple[int, int]]:
        """Where each assistant content lies in `full`, from the marked rendering."""
        places: dict[int, tuple[int, int]] = {}
        pos_m, pos_f = 0, 0
        for i in wanted:
            m = _marker(i)
            at = marked.find(m, pos_m)
            if at < 0 or marked.count(m) != 1:
                raise TemplateProblem(
                    f"{self.where}: row {row}: the chat template does not write assistant message {i} "
                    "exactly once; its content cannot be trained (use loss_on: all, or another template)"
                )
            literal = marked[pos_m:at]
            if full[pos_f : pos_f + len(literal)] != literal:
                raise self._rewritten(row, i)
            pos_f += len(literal)
            nxt = marked.find("\ue000", at + len(m))
            tail = marked[at + len(m) : nxt if nxt >= 0 else len(marked)]
            content = messages[i]["content"]
            as_written = (content, content.strip(), content.rstrip(), content.lstrip())
            for cand in dict.fromkeys(as_written):
                if full.startswith(cand + tail, pos_f):
                    places[i] = (pos_f, pos_f + len(cand))
                    pos_f += len(cand)
                    break
            else:
                raise self._rewritten(row, i)
            pos_m = at + len(m)
        if full[pos_f:] != marked[pos_m:]:
            raise self._rewritten(row, wanted[-1] if wanted else 0)
        return places

    def _rewritten(self, row: int, i: int) -> TemplateProblem:
        return TemplateProblem(
            f"{self.where}: row {row}: the chat template rewrites assistant message {i}'s content, so "
            "it cannot be found in the rendering (use loss_on: all, or a template that writes it as given)"
        )

    def _closer(self, full: str, end: int, row: int, i: int) -> tuple[int, int]:
        """The span of the end-of-turn token right after an assistant content."""
        rest = full[end:]
        gap = len(rest) - len(rest.lstrip())
        for tok in self.closers:
            if rest.startswith(tok, gap):
                return end + gap, end + gap + len(tok)
        if rest:  # no special token: whatever the template writes there (its first token)
            return end, end + 1
        raise TemplateProblem(
            f"{self.where}: row {row}: the chat template writes nothing after assistant message {i}: "
            "a model trained on it would never learn to stop; use a template that closes assistant turns"
        )

    def _check_prefix(self, messages: list[dict], marked: str, i: int, row: int) -> None:
        """The conversation up to message i renders as the start of the whole rendering, both
        as the prompt for message i and through message i's end-of-turn token."""
        m = _marker(i)
        at = marked.find(m)
        if i > 0:
            prompt = self.render(self.marked(messages[:i]), row, generation=True)
            if not marked.startswith(prompt) or len(prompt) > at:
                raise self._unstable(row, i, "the prompt for it")
        upto = self.render(self.marked(messages[: i + 1]), row)
        here = upto.find(m)
        if here < 0:
            raise self._unstable(row, i, "the conversation up to it")
        cut = here + len(m)
        rest = upto[cut:]
        gap = len(rest) - len(rest.lstrip())
        closer = next((t for t in self.closers if rest.startswith(t, gap)), None)
        cut += gap + len(closer) if closer is not None else min(1, len(rest))
        if not marked.startswith(upto[:cut]):
            raise self._unstable(row, i, "the conversation up to it")

    def _unstable(self, row: int, i: int, what: str) -> TemplateProblem:
        return TemplateProblem(
            f"{self.where}: row {row}: the chat template does not render {what} (assistant message {i}) "
            "as the start of the whole conversation, so the model would train on contexts it never "
            "sees when it generates; use a template whose rendering is a stable prefix, or loss_on: all"
        )

    # -- tokens ----------------------------------------------------------------------------------

    def encode(self, text: str, spans: list[tuple[int, int]] | None) -> Encoded:
        """Tokenize `text` as at inference (no special tokens added: the template has them);
        `spans` None trains every token. The first token is never trained: nothing predicts
        it (and in a packed row it would be predicted from the row before)."""
        if spans is not None and not getattr(self.tok, "is_fast", False):
            raise ConfigError(
                f"{self.where}: the model's tokenizer is a slow (Python) one, which cannot map tokens "
                "to characters; masks need its fast tokenizer (tokenizer.json), or use loss_on: all"
            )
        enc = self.tok(text, add_special_tokens=False, return_offsets_mapping=spans is not None)
        ids = list(enc["input_ids"])
        if spans is None:
            mask = [1] * len(ids)
        else:
            mask = [
                int(any(s < b and e > a for a, b in spans) and e > s)
                for s, e in enc["offset_mapping"]
            ]
        if mask:
            mask[0] = 0
        return Encoded(ids, mask)
