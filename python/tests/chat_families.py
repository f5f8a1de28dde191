"""Chat templates of the common families, written here from their documented layouts, and tiny
tokenizers for them (a byte-level BPE trained on the test corpus, each family's own special
tokens). Used by the assistant-mask tests: the masks must come out right on every one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tiny import corpus

CHATML_DEFAULT_SYSTEM = (  # Qwen 2.5: a default system prompt when the conversation has none
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}{%- if message.role != 'system' or not loop.first %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

CHATML_GENERATION = (  # ChatML with {% generation %} markers around what is trained
    "{% for message in messages %}{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}"
    "{% endgeneration %}{{ '\\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

LLAMA2 = (  # [INST], the system prompt folded into the first user turn
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}"
    "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}"
    "{% endfor %}"
)

MISTRAL = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}"
    "{% endfor %}"
)

GEMMA = (  # the assistant is "model"; no system role
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
)

PHI3 = (  # the conversation ends with EOS when no generation prompt follows
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + '\\n' + message['content'] + '<|end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}"
)

ZEPHYR = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + eos_token }}"
    "{% elif message['role'] == 'system' %}{{ '<|system|>\\n' + message['content'] + eos_token }}"
    "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\\n' + message['content'] + eos_token }}"
    "{% endif %}{% if loop.last and add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
    "{% endfor %}"
)

UNSTABLE = (  # drops earlier assistant turns' text (as reasoning templates strip <think>)
    "{% for message in messages %}{% if message['role'] == 'assistant' and not loop.last %}"
    "{{ '<|im_start|>assistant\\n<|im_end|>\\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@dataclass(frozen=True)
class Family:
    name: str
    template: str
    specials: tuple[str, ...]
    bos: str | None
    eos: str
    eot: str  # the token that closes an assistant turn
    system: bool = True  # the template renders a system message


FAMILIES = [
    Family("chatml-qwen", CHATML_DEFAULT_SYSTEM, ("<|im_start|>", "<|im_end|>", "<|endoftext|>"), None, "<|im_end|>", "<|im_end|>"),
    Family("chatml-generation", CHATML_GENERATION, ("<|im_start|>", "<|im_end|>"), None, "<|im_end|>", "<|im_end|>"),
    Family("llama3", LLAMA3, ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"), "<|begin_of_text|>", "<|eot_id|>", "<|eot_id|>"),
    Family("llama2", LLAMA2, ("<s>", "</s>"), "<s>", "</s>", "</s>"),
    Family("mistral", MISTRAL, ("<s>", "</s>"), "<s>", "</s>", "</s>", system=False),
    Family("gemma", GEMMA, ("<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"), "<bos>", "<eos>", "<end_of_turn>", system=False),
    Family("phi3", PHI3, ("<s>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"), "<s>", "<|endoftext|>", "<|end|>"),
    Family("zephyr", ZEPHYR, ("<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"), "<s>", "</s>", "</s>"),
]  # fmt: skip


def build_tokenizer(family: Family, out: Path | None = None):
    """A PreTrainedTokenizerFast with the family's special tokens and template (saved to
    `out` when given, with a config.json so AutoTokenizer can load the folder)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        corpus(), vocab_size=400, min_frequency=1, special_tokens=list(family.specials)
    )
    kw = {"eos_token": family.eos, "pad_token": family.eos}
    if family.bos:
        kw["bos_token"] = family.bos
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, **kw)
    tok.add_special_tokens({"additional_special_tokens": list(family.specials)})
    tok.chat_template = family.template
    if out is not None:
        tok.save_pretrained(out)
    return tok


def conversation(system: bool) -> list[dict[str, str]]:
    """Three user/assistant turns (and a system prompt)."""
    turns = [
        {"role": "user", "content": "the court agree on a clause?"},
        {"role": "assistant", "content": "yes because the contract term is good."},
        {"role": "user", "content": "and the damages claim"},
        {"role": "assistant", "content": "no, the breach notice was bad."},
        {"role": "user", "content": "appeal the rule"},
        {"role": "assistant", "content": "the judges agree; helpful remedy."},
    ]
    return (
        [{"role": "system", "content": "you answer law questions politely."}] if system else []
    ) + turns
