"""Assistant-only loss on any chat template (labels.py, rows.py): on tiny tokenizers of eight
template families, every token of every assistant content and the end-of-turn token after it
are trained, nothing else; ShareGPT and Alpaca rows give the rows of the equivalent
conversation; templates that cannot be trained correctly are refused naming the row."""

from __future__ import annotations

import pytest
from chat_families import FAMILIES, UNSTABLE, build_tokenizer, conversation

from lexalign import chat
from lexalign.errors import ConfigError
from lexalign.rows import RowBuilder

TOKENIZERS: dict[str, object] = {}


def tokenizer(family):
    if family.name not in TOKENIZERS:
        TOKENIZERS[family.name] = build_tokenizer(family)
    return TOKENIZERS[family.name]


def encode(tok, messages, loss_on="assistant", max_length=4096):
    b = RowBuilder(tok, loss_on, max_length, "cfg.yaml")
    return b.encode("messages", {"messages": messages}, 0)


def runs(tok, ids, mask) -> list[str]:
    """The decoded text of each run of consecutive trained tokens."""
    out, cur = [], []
    for t, m in zip(ids, mask, strict=True):
        if m:
            cur.append(t)
        elif cur:
            out.append(tok.decode(cur))
            cur = []
    if cur:
        out.append(tok.decode(cur))
    return out


def squash(text: str) -> str:
    return "".join(text.split())


CASES = [(f, s) for f in FAMILIES for s in (True, False) if f.system or not s]


@pytest.mark.parametrize(
    "family, system", CASES, ids=[f"{f.name}-{'system' if s else 'no-system'}" for f, s in CASES]
)
def test_every_assistant_token_and_its_end_of_turn_is_trained_and_nothing_else(family, system):
    tok = tokenizer(family)
    messages = conversation(system)
    enc = encode(tok, messages)
    assistant = [m["content"] for m in messages if m["role"] == "assistant"]
    # the trained text is exactly each assistant content followed by the end-of-turn token
    trained = squash("".join(runs(tok, enc.input_ids, enc.mask)))
    assert trained == squash("".join(a.strip() + family.eot for a in assistant)), runs(
        tok, enc.input_ids, enc.mask
    )
    eot = tok.convert_tokens_to_ids(family.eot)
    trained_eot = [
        i for i, (t, m) in enumerate(zip(enc.input_ids, enc.mask, strict=True)) if t == eot and m
    ]
    assert len(trained_eot) == len(assistant), "one end-of-turn token per assistant message"
    # what is not trained holds every other message and the template's markup
    untrained = squash(
        tok.decode([t for t, m in zip(enc.input_ids, enc.mask, strict=True) if not m])
    )
    for m in messages:
        if m["role"] != "assistant":
            assert squash(m["content"]) in untrained
    assert enc.mask[0] == 0
    # the rendering is tokenized as at inference: the same ids as the template's own tokenizing
    assert enc.input_ids == tok.apply_chat_template(messages, tokenize=True)


def test_a_default_system_prompt_the_template_inserts_is_not_trained():
    family = next(f for f in FAMILIES if f.name == "chatml-qwen")
    tok = tokenizer(family)
    enc = encode(tok, conversation(system=False))
    text = tok.decode(enc.input_ids)
    assert "You are a helpful assistant." in text
    assert "helpful assistant" not in " ".join(runs(tok, enc.input_ids, enc.mask))


def test_generation_markers_give_the_same_masks_as_without_them():
    family = next(f for f in FAMILIES if f.name == "chatml-generation")
    tok = tokenizer(family)
    messages = conversation(system=True)
    enc = encode(tok, messages)
    theirs = tok.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    assert enc.input_ids == theirs["input_ids"]
    assert enc.mask[1:] == theirs["assistant_masks"][1:]


@pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])
def test_sharegpt_rows_give_the_rows_of_role_content_rows(family):
    tok = tokenizer(family)
    messages = conversation(family.system)
    back = {"user": "human", "assistant": "gpt", "system": "system"}
    sharegpt = [{"from": back[m["role"]], "value": m["content"]} for m in messages]
    a, b = encode(tok, messages), encode(tok, sharegpt)
    assert (a.input_ids, a.mask) == (b.input_ids, b.mask)


def test_alpaca_rows_are_the_conversation_they_describe():
    row = {"instruction": "name the remedy", "input": "breach of a term", "output": "damages."}
    assert chat.from_alpaca(row, 0, "x") == [
        {"role": "user", "content": "name the remedy\n\nbreach of a term"},
        {"role": "assistant", "content": "damages."},
    ]
    row = {"instruction": "name it", "input": "", "output": "ok", "system": "be brief"}
    assert chat.from_alpaca(row, 0, "x") == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "name it"},
        {"role": "assistant", "content": "ok"},
    ]


def test_rows_without_an_assistant_turn_have_nothing_to_train():
    tok = tokenizer(FAMILIES[0])
    assert encode(tok, [{"role": "user", "content": "hello"}]) == "no assistant turn"
    assert encode(tok, []) == "empty conversation"


def test_loss_on_all_trains_every_token_but_the_first():
    tok = tokenizer(FAMILIES[0])
    enc = encode(tok, conversation(True), loss_on="all")
    assert enc.mask == [0] + [1] * (len(enc.input_ids) - 1)


@pytest.mark.parametrize(
    "messages, expected",
    [
        ([{"role": "wizard", "content": "x"}], "role 'wizard'"),
        ([{"from": "alien", "value": "x"}], "role 'alien'"),
        ([{"role": "user", "content": ["x"]}], "no text content"),
        ([{"role": "user", "content": "x", "from": "human"}], "mixes role/content and from/value"),
    ],
)
def test_bad_messages_are_refused_naming_the_row(messages, expected):
    tok = tokenizer(FAMILIES[0])
    with pytest.raises(ConfigError, match=expected) as err:
        encode(tok, messages)
    assert "row 0" in str(err.value)


def test_a_dataset_mixing_shapes_is_refused_naming_the_first_row_that_differs():
    tok = tokenizer(FAMILIES[0])
    b = RowBuilder(tok, "assistant", 4096, "cfg.yaml")
    b.encode("messages", {"messages": conversation(False)}, 0)
    with pytest.raises(ConfigError, match=r"row 7: its messages use from/value"):
        b.encode("messages", {"messages": [{"from": "human", "value": "hi"}]}, 7)


def test_a_role_the_template_cannot_render_is_refused_naming_the_row():
    tok = tokenizer(next(f for f in FAMILIES if f.name == "gemma"))
    with pytest.raises(ConfigError, match=r"row 0: the model's chat template cannot render"):
        encode(tok, conversation(system=True))


def test_a_template_that_is_not_a_stable_prefix_is_refused():
    family = FAMILIES[0]
    tok = build_tokenizer(family)
    tok.chat_template = UNSTABLE
    with pytest.raises(ConfigError, match=r"row 0: the chat template"):
        encode(tok, conversation(system=False))


def test_truncation_keeps_the_first_tokens_and_trains_what_is_left():
    tok = tokenizer(FAMILIES[0])
    b = RowBuilder(tok, "assistant", 4096, "cfg.yaml")
    whole = b.encode("messages", {"messages": conversation(False)}, 0)
    first = whole.mask.index(1)
    cut, was_cut = b.cut(type(whole)(whole.input_ids, whole.mask))
    assert not was_cut
    short = RowBuilder(tok, "assistant", first + 3, "cfg.yaml")
    part, was_cut = short.cut(whole)
    assert was_cut and part.input_ids == whole.input_ids[: first + 3]
    assert part.mask == whole.mask[: first + 3] and sum(part.mask) == 3


def test_preview_tells_an_align_config_from_its_keys_or_its_data(tmp_path):
    from lexalign.kinds import TrainKind
    from lexalign.preview import kind_of

    (tmp_path / "p.jsonl").write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n')
    (tmp_path / "t.jsonl").write_text('{"text": "the court"}\n')
    cases = {
        "model: m\ndataset: {path: P}\n": TrainKind.ALIGN,  # from the data
        "model: m\nbeta: 0.2\ndataset: {path: T}\n": TrainKind.ALIGN,  # from a key
        "model: m\ndataset: {path: T}\n": TrainKind.FINETUNE,
        "model: m\ndataset: {path: P, text_field: prompt}\n": TrainKind.FINETUNE,
    }
    for body, kind in cases.items():
        cfg = tmp_path / "c.yaml"
        body = body.replace("P", str(tmp_path / "p.jsonl")).replace("T", str(tmp_path / "t.jsonl"))
        cfg.write_text(body)
        assert kind_of(str(cfg)) is kind, body
