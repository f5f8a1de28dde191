"""Build a tiny causal LM offline: a byte-level BPE tokenizer trained with `tokenizers` on a few
KB of text, and a random-init GPT-2 (2 layers, 64 dims) saved with save_pretrained."""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = (
    "the a model learns to answer questions about law contracts courts judges parties agree "
    "claim damages notice term clause breach remedy evidence witness appeal statute rule case "
    "good bad helpful harmful polite rude yes no because therefore however"
).split()

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def corpus(n: int = 400, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 16))) + "." for _ in range(n)]


def _tokenizer(out: Path, specials: list[str], template: str, **roles: str):
    """A byte-level BPE trained on the corpus, as a plain PreTrainedTokenizerFast with a chat
    template, saved in `out`."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus(), vocab_size=400, min_frequency=1, special_tokens=specials)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, **roles)
    tok.chat_template = template
    tok.save_pretrained(out)
    return tok


def _built(out: Path) -> bool:
    out.mkdir(parents=True, exist_ok=True)
    return (out / "config.json").exists() and (out / "tokenizer.json").exists()


def build_tiny_model(out: Path, seed: int = 0, n_positions: int = 256) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    out = Path(out)
    if _built(out):
        return out
    end = "<|endoftext|>"
    tok = _tokenizer(
        out, [end], CHAT_TEMPLATE, bos_token=end, eos_token=end, unk_token=end, pad_token=end
    )
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tok),
        n_positions=n_positions,
        n_embd=64,
        n_layer=2,
        n_head=2,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(out, safe_serialization=True)
    return out


CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tiny_llama(out: Path, seed: int = 0) -> Path:
    """A random-init Llama (2 layers, 64 dims) with a ChatML template and a plain
    PreTrainedTokenizerFast, as many Hub chat models ship (it returns token_type_ids)."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "config.json").exists() and (out / "tokenizer.json").exists():
        return out
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        corpus(), vocab_size=400, min_frequency=1, special_tokens=["<|im_start|>", "<|im_end|>"]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
    )
    tok.chat_template = CHATML_TEMPLATE
    tok.save_pretrained(out)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(out, safe_serialization=True)
    return out


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def sft_rows(n: int = 64) -> list[dict]:
    return [{"text": t} for t in corpus(n, seed=1)]


def prompt_completion_rows(n: int = 64) -> list[dict]:
    rng = random.Random(2)
    return [
        {
            "prompt": f"question: {' '.join(rng.sample(WORDS, 5))}?",
            "completion": " answer: yes because the clause.",
        }
        for _ in range(n)
    ]


def chat_rows(n: int = 64) -> list[dict]:
    rng = random.Random(3)
    return [
        {
            "messages": [
                {"role": "user", "content": " ".join(rng.sample(WORDS, 6))},
                {"role": "assistant", "content": "helpful polite answer."},
            ]
        }
        for _ in range(n)
    ]


def preference_rows(n: int = 64) -> list[dict]:
    rng = random.Random(4)
    return [
        {
            "prompt": f"question: {' '.join(rng.sample(WORDS, 5))}?",
            "chosen": " helpful polite answer.",
            "rejected": " rude harmful answer.",
        }
        for _ in range(n)
    ]
