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


def generate(model, tokenizer, prompt: str, max_new_tokens: int = 32) -> str:
    import torch

    inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
    with torch.no_grad():
        out = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        )
    return tokenizer.decode(out[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True)
