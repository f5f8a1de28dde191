"""Planning a run before any weights load: LoRA targets per architecture, the trainable
parameter count (on the meta device), the device and precision, the dataset's token lengths,
and the plan table `--dry-run` prints."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import models, testing
from ..config import AlignConfig, FinetuneConfig
from ..console import Console
from ..errors import ConfigError
from ..kinds import TrainKind
from .dist import is_main, world_size
from .outputs import resolve_resume

LORA_TARGETS = {
    "gpt2": ["c_attn", "c_proj"],
    "gpt_neox": ["query_key_value", "dense"],
    "gptj": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "opt": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "bloom": ["query_key_value", "dense"],
    "falcon": ["query_key_value", "dense"],
    "phi": ["q_proj", "k_proj", "v_proj", "dense"],
}
LLAMA_STYLE = ["q_proj", "k_proj", "v_proj", "o_proj"]
FAN_IN_FAN_OUT = {"gpt2"}  # Conv1D layers store weights transposed


def choose_target_modules(
    model_type: str, requested: Any, module_names: list[str] | None = None
) -> tuple[Any, bool]:
    """(target_modules, fan_in_fan_out) for a model type; `requested` is "auto", "all-linear"
    or a list. With a list, names that match no module are a config error (when known)."""
    fan = model_type in FAN_IN_FAN_OUT
    if requested == "all-linear":
        return "all-linear", fan
    if isinstance(requested, list):
        if module_names is not None:
            leaves = {n.split(".")[-1] for n in module_names}
            missing = [m for m in requested if m not in leaves]
            if missing:
                sample = ", ".join(sorted(leaves)[:12])
                raise ConfigError(
                    f"lora.target_modules: {missing} match no module of this {model_type} model; some of its modules: {sample}"
                )
        return list(requested), fan
    if model_type in LORA_TARGETS:
        return list(LORA_TARGETS[model_type]), fan
    if module_names is None or any(n.endswith("q_proj") for n in module_names):
        return list(LLAMA_STYLE), fan
    return "all-linear", fan


def lora_parameter_count(model, target_modules: Any, r: int) -> int:
    """Trainable LoRA parameters for `model` (on the meta device is fine): r * (in + out) per
    targeted linear/Conv1D layer."""
    total = 0
    for name, module in model.named_modules():
        leaf = name.split(".")[-1]
        weight = getattr(module, "weight", None)
        if weight is None or weight.dim() != 2:
            continue
        if target_modules == "all-linear":
            if leaf in ("lm_head", "wte", "wpe", "embed_tokens") or type(module).__name__ not in (
                "Linear",
                "Conv1D",
            ):
                continue
        elif leaf not in target_modules:
            continue
        total += r * (weight.shape[0] + weight.shape[1])
    return total


def _eval_source(cfg: FinetuneConfig | AlignConfig) -> str | None:
    d = cfg.dataset
    if d.eval_path is not None:
        return f"eval_path {d.eval_path}"
    if d.eval_split is not None:
        return f"eval_split {d.eval_split}"
    if d.eval_fraction is not None:
        return f"eval_fraction {d.eval_fraction:g} of {d.path} (seed {cfg.training.seed})"
    return None


def device() -> tuple[str, str]:
    import torch

    if torch.cuda.is_available():
        return "cuda", "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "cpu", "fp32"


def _sft_rows(ds, eval_ds, tokenizer, t, source: str):
    """The finetune rows as the trainer gets them (rows.py: tokens and what is trained, rows
    without a trained token dropped), and what the plan says of them."""
    from .. import rows

    built = rows.build(ds, tokenizer, t.loss_on, t.max_length, source)
    train_ds = rows.to_dataset(built, source)
    if eval_ds is not None:
        eval_ds = rows.to_dataset(
            rows.build(eval_ds, tokenizer, t.loss_on, t.max_length, source),
            source,
            "evaluation data",
        )
    st = built.stats
    return (
        train_ds,
        eval_ds,
        {
            "loss_on": built.loss_on,
            "rows_total": st.rows_total,
            "rows_dropped": st.rows_dropped,
            "dropped": dict(st.dropped),
            "tokens_total": st.tokens_total,
            "tokens_trained": st.tokens_trained,
            "trained_share": round(st.trained_share(), 4),
            "lengths": st.lengths,
            "truncated": st.truncated,
        },
    )


def _dpo_pairs(ds, eval_ds, tokenizer, t, source: str):
    """The align pairs as DPO gets them (pairs.py), and what the plan says of them."""
    from .. import pairs

    built = pairs.build(ds, tokenizer, t.max_length, source)
    train_ds = pairs.to_dataset(built, source)
    if eval_ds is not None:
        eval_ds = pairs.to_dataset(
            pairs.build(eval_ds, tokenizer, t.max_length, source), source, "evaluation data"
        )
    st = built.stats
    return (
        train_ds,
        eval_ds,
        {
            "loss_on": "assistant",
            "rows_total": st.rows_total,
            "rows_dropped": st.rows_dropped,
            "dropped": dict(st.dropped),
            "tokens_total": st.tokens_total,
            "tokens_trained": st.tokens_trained,
            "trained_share": round(st.trained_share(), 4),
            "lengths": st.lengths,
            "truncated": st.truncated,
        },
    )


def _trained_row(trained: dict[str, Any]) -> list[list[str]]:
    if not trained:
        return []
    dropped = ", ".join(f"{n} {why}" for why, n in trained["dropped"].items()) or "none"
    return [
        [
            "trained",
            f"loss on {trained['loss_on']}: {trained['tokens_trained']:,} of {trained['tokens_total']:,} "
            f"tokens ({100 * trained['trained_share']:.1f}%); rows dropped: {dropped}",
        ]
    ]


@dataclass
class Prepared:
    """What `run` worked out before training: the data, tokenizer, LoRA targets, device, plan."""

    ds: Any
    eval_ds: Any
    tokenizer: Any
    model_config: Any
    target_modules: Any
    fan_in_fan_out: bool
    device: str
    precision: str
    resume_from: Path | None
    plan: dict[str, Any]
    source: str


def prepare(
    kind: TrainKind,
    cfg: FinetuneConfig | AlignConfig,
    console: Console,
    *,
    config_path: str,
    dry_run: bool,
    overwrite: bool,
) -> Prepared | None:
    """Check the config cheaply, load tokenizer and data, print the plan. None for a dry run."""
    source = config_path
    if not is_main():
        console = Console("quiet")
    output_dir = Path(cfg.output_dir)

    # Cheap checks first (no torch, no network yet).
    models.check_model(cfg.model, f"{source}: model")
    adapter = getattr(cfg, "adapter", None)
    if adapter:
        models.check_adapter(adapter, f"{source}: adapter")
    machine = testing.machine()
    if cfg.quantization != "none" and machine.lower() in ("aarch64", "arm64"):
        raise ConfigError(
            f"{source}: quantization: {cfg.quantization} is not available on {machine} (linux/arm64): "
            "bitsandbytes QLoRA needs an x86_64 Linux machine with a CUDA GPU (PyPI's aarch64 torch is CPU only). "
            "Set quantization: none"
        )
    t = cfg.training
    if t.report_to == "tensorboard" and importlib.util.find_spec("tensorboardX") is None:
        raise ConfigError(
            f"{source}: training.report_to: tensorboard needs the tensorboardX package, which is not installed; "
            "rebuild the image (cargo xtask image) or set report_to: none"
        )

    device_name, precision = device()
    if cfg.quantization != "none" and device_name != "cuda":
        raise ConfigError(
            f"{source}: quantization: {cfg.quantization} needs a CUDA GPU (bitsandbytes QLoRA); this machine has none. "
            "Set quantization: none to train in fp32 on CPU"
        )

    from transformers import AutoConfig, AutoTokenizer

    from .. import data

    try:
        model_config = AutoConfig.from_pretrained(cfg.model)
        tokenizer = AutoTokenizer.from_pretrained(cfg.model)
    except (OSError, ValueError) as exc:
        raise models.load_error(cfg.model, exc, f"{source}: model") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    ds, eval_ds = data.datasets_for(kind.method, cfg.dataset, source, t.seed)
    if "messages" in ds.column_names and not tokenizer.chat_template:
        raise ConfigError(
            f"{source}: dataset.messages_field: the tokenizer of {cfg.model} has no chat template; use text_field or prompt_field + completion_field"
        )

    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        meta_model = AutoModelForCausalLM.from_config(model_config)
    names = [n for n, _ in meta_model.named_modules()]
    target_modules, fan_in_fan_out = choose_target_modules(
        model_config.model_type, cfg.lora.target_modules, names
    )
    n_params = sum(p.numel() for p in meta_model.parameters())
    n_lora = lora_parameter_count(meta_model, target_modules, cfg.lora.r)
    del meta_model

    world = world_size()
    effective_batch = t.batch_size * t.gradient_accumulation_steps * world
    if kind is TrainKind.FINETUNE:
        ds, eval_ds, trained = _sft_rows(ds, eval_ds, tokenizer, t, source)
        lengths, truncated = trained.pop("lengths"), trained.pop("truncated")
    else:
        ds, eval_ds, trained = _dpo_pairs(ds, eval_ds, tokenizer, t, source)
        lengths, truncated = trained.pop("lengths"), trained.pop("truncated")
    resume_from, start = resolve_resume(cfg, output_dir, overwrite, source, dry_run=dry_run)
    plan = {
        "kind": str(kind),
        "model": cfg.model,
        "model_type": model_config.model_type,
        "parameters": n_params,
        "trainable_lora_parameters": n_lora,
        "target_modules": target_modules,
        "rows": len(ds),
        "eval_rows": len(eval_ds) if eval_ds is not None else 0,
        "eval_source": _eval_source(cfg),
        "eval_steps": (t.eval_steps or t.save_steps) if eval_ds is not None else None,
        "packing": t.packing,
        "report_to": t.report_to,
        "truncated_rows": truncated,
        **trained,
        "max_tokens": max(lengths),
        "mean_tokens": round(sum(lengths) / len(lengths), 1),
        "max_steps": t.max_steps,
        "effective_batch_size": effective_batch,
        "epochs": round(t.max_steps * effective_batch / len(ds), 2),
        "device": device_name,
        "precision": precision,
        "world_size": world,
        "output_dir": str(output_dir),
        "start": start,
        "checkpoints": str(output_dir / "checkpoint-<step>"),
        "metrics": str(output_dir / "metrics.jsonl"),
    }
    console.event("plan", **plan)
    if console.human:
        console.table(
            f"{kind} plan" + (" (dry run: nothing written)" if dry_run else ""),
            ["", ""],
            [
                ["model", f"{cfg.model} ({model_config.model_type}, {n_params:,} parameters)"],
                [
                    "LoRA",
                    f"r={cfg.lora.r} alpha={cfg.lora.alpha:g} dropout={cfg.lora.dropout:g} on {target_modules} "
                    f"→ {n_lora:,} trainable ({100 * n_lora / max(n_params, 1):.2f}%)",
                ],
                [
                    "dataset",
                    f"{len(ds)} train rows ({ds.column_names}); {truncated} longer than max_length={t.max_length}"
                    + (", packed" if t.packing else ""),
                ],
                [
                    "evaluation",
                    f"{len(eval_ds)} rows from {plan['eval_source']}, every {plan['eval_steps']} steps and at the end"
                    if eval_ds is not None
                    else "none (set dataset.eval_path, eval_split or eval_fraction)",
                ],
                ["tokens", f"max {max(lengths)}, mean {sum(lengths) / len(lengths):.1f}"],
                *_trained_row(trained),
                [
                    "steps",
                    f"{t.max_steps} × effective batch {effective_batch} "
                    f"({t.batch_size}×{t.gradient_accumulation_steps}×{world} ranks) ≈ {plan['epochs']} epochs",
                ],
                ["device", f"{device_name} ({precision})"],
                ["start", start],
                [
                    "outputs",
                    f"{output_dir}/ (adapter, tokenizer, checkpoint-*, metrics.jsonl, run.json)",
                ],
            ],
        )
    if dry_run:
        return None

    return Prepared(
        ds,
        eval_ds,
        tokenizer,
        model_config,
        target_modules,
        fan_in_fan_out,
        device_name,
        precision,
        resume_from,
        plan,
        source,
    )
