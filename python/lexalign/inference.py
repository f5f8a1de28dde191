"""Load a LexAlign output for generation: a finetune output (base + adapter), or an align output
that was trained on top of a merged SFT adapter (base + SFT adapter merged + DPO adapter).

    from lexalign.inference import load, generate
    model, tokenizer = load("outputs/dpo")
    print(generate(model, tokenizer, "question: what is a clause?"))
"""

from __future__ import annotations

import json
from pathlib import Path


def load(output_dir: str | Path, device: str | None = None, base: str | None = None):
    """base + adapter (an align output: base + merged SFT adapter + DPO adapter), in fp32."""
    import sys

    sys.modules.setdefault("bitsandbytes", None)  # type: ignore[arg-type]  # not needed to generate
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(output_dir)
    run = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
    base = (
        base
        or run.get("base_model")
        or json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"]
    )
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if run.get("base_adapter"):
        model = PeftModel.from_pretrained(model, str(out / run["base_adapter"])).merge_and_unload()
        if hasattr(model, "peft_config"):
            del model.peft_config
    model = PeftModel.from_pretrained(model, str(out))
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    if device:
        model.to(device)
    model.eval()
    return model, tokenizer


def load_model(model_dir: str, device: str | None = None):
    """A plain causal LM (an export, a download, or a Hub id) and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if device:
        model.to(device)
    model.eval()
    return model, tokenizer


def prompt_ids(tokenizer, prompt: str, raw: bool = False):
    """The prompt as the model was trained to see it: through the tokenizer's chat template
    when it has one (a user turn, then the assistant's turn opened), else as is (`raw`)."""
    if getattr(tokenizer, "chat_template", None) and not raw:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        enc = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    else:
        enc = tokenizer(prompt, return_tensors="pt")
    # only what every causal LM's forward takes: tokenizers that return token_type_ids (a
    # plain PreTrainedTokenizerFast does) break generate() on Llama-style models
    return {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask")}


def generate(
    model,
    tokenizer,
    prompt: str,
    max_new_tokens: int = 32,
    *,
    raw: bool = False,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
    stream=None,
) -> str:
    """The completion of `prompt` (greedy unless temperature > 0). `stream`: a callable that
    gets the text as tokens come."""
    import torch

    inputs = {k: v.to(model.device) for k, v in prompt_ids(tokenizer, prompt, raw).items()}
    sampling = temperature > 0
    if seed is not None:
        torch.manual_seed(seed)
    kwargs = dict(
        max_new_tokens=max_new_tokens,
        do_sample=sampling,
        pad_token_id=tokenizer.pad_token_id
        if tokenizer.pad_token_id is not None
        else tokenizer.eos_token_id,
    )
    if sampling:
        kwargs.update(temperature=temperature, top_p=top_p)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    if stream is not None:
        from transformers import TextStreamer

        class _Streamer(TextStreamer):
            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                stream(text)

        kwargs["streamer"] = _Streamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    with torch.no_grad():
        out = model.generate(**inputs, **kwargs)
    return tokenizer.decode(out[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True)
