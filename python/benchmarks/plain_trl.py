"""The floor for the training benchmark: a minimal plain-trl LoRA SFT script with the same
model, data and settings as the finetune CLI run in train_bench.py. Writes one line per step
(step, time) to the file given as the last argument."""

from __future__ import annotations

import json
import sys
import time

from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoTokenizer, TrainerCallback, set_seed
from trl import SFTConfig, SFTTrainer

model_dir, data_file, out_dir, steps, times_file = sys.argv[1:6]
set_seed(42)
tokenizer = AutoTokenizer.from_pretrained(model_dir)
tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
ds = load_dataset("json", data_files=data_file, split="train")
stamps = []


class Stamp(TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        stamps.append((state.global_step, time.time()))


args = SFTConfig(
    output_dir=out_dir,
    max_steps=int(steps),
    learning_rate=2e-4,
    per_device_train_batch_size=4,
    max_length=128,
    logging_steps=10,
    save_strategy="no",
    report_to=[],
    bf16=False,
    fp16=False,
    use_cpu=True,
    gradient_checkpointing=False,
    seed=42,
    disable_tqdm=True,
    dataloader_num_workers=0,
)
peft_config = LoraConfig(
    r=8,
    lora_alpha=16,
    lora_dropout=0.05,
    target_modules=["c_attn", "c_proj"],
    fan_in_fan_out=True,
    task_type="CAUSAL_LM",
)
trainer = SFTTrainer(
    model=model_dir,
    args=args,
    train_dataset=ds,
    processing_class=tokenizer,
    peft_config=peft_config,
    callbacks=[Stamp()],
)
trainer.train()
with open(times_file, "w") as f:
    for step, t in stamps:
        f.write(json.dumps({"step": step, "time": t}) + "\n")
