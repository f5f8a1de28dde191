"""Planning a run before any weights load: LoRA targets per architecture, the trainable
parameter count (on the meta device), the device and precision, the dataset's token lengths,
and the plan table `--dry-run` prints."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import models, testing, tracking
from ..console import Console
from ..errors import ConfigError
from ..kinds import TrainKind
from ..trainconfig import AlignConfig, FinetuneConfig
from .dist import is_main, world_size
from .outputs import resolve_resume
from .sharding import Sharding
from .sharding import plan as plan_sharding

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
    return train_ds, eval_ds, built.stats.plan(built.loss_on)


def _dpo_pairs(ds, eval_ds, tokenizer, t, source: str):
    """The align pairs as DPO gets them (pairs.py), and what the plan says of them."""
    from .. import pairs

    built = pairs.build(ds, tokenizer, t.max_length, source)
    train_ds = pairs.to_dataset(built, source)
    if eval_ds is not None:
        eval_ds = pairs.to_dataset(
            pairs.build(eval_ds, tokenizer, t.max_length, source), source, "evaluation data"
        )
    return train_ds, eval_ds, built.stats.plan("assistant")


def _trained_row(trained: dict[str, Any]) -> list[list[str]]:
    if "loss_on" not in trained:
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
    sharding: Sharding


def _cheap_checks(cfg: FinetuneConfig | AlignConfig, source: str) -> tuple[str, str, Sharding]:
    """What can be refused before anything heavy loads; the (device, precision) to train on."""
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
    tracking.check(cfg.training.report_to, source)
    if "tensorboard" in cfg.training.report_to and importlib.util.find_spec("tensorboardX") is None:
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
    sharding = plan_sharding(cfg.training, device_name, source)
    if cfg.quantization != "none" and sharding.strategy not in ("none", "zero2"):
        raise ConfigError(
            f"{source}: training.sharding: {sharding.strategy} with quantization: {cfg.quantization} "
            "is not supported (quantized weights are not sharded); use sharding: zero2 or none"
        )
    return device_name, precision, sharding


def _config_and_tokenizer(cfg, source: str):
    from transformers import AutoConfig, AutoTokenizer

    try:
        model_config = AutoConfig.from_pretrained(cfg.model)
        tokenizer = AutoTokenizer.from_pretrained(cfg.model)
    except (OSError, ValueError) as exc:
        raise models.load_error(cfg.model, exc, f"{source}: model") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model_config, tokenizer


@dataclass
class LoraPlan:
    target_modules: Any
    fan_in_fan_out: bool
    parameters: int
    trainable: int


def _lora_plan(model_config, cfg) -> LoraPlan:
    """LoRA targets and parameter counts from the architecture on the meta device (no weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        meta_model = AutoModelForCausalLM.from_config(model_config)
    names = [n for n, _ in meta_model.named_modules()]
    targets, fan = choose_target_modules(model_config.model_type, cfg.lora.target_modules, names)
    n_params = sum(p.numel() for p in meta_model.parameters())
    return LoraPlan(targets, fan, n_params, lora_parameter_count(meta_model, targets, cfg.lora.r))


def _plan(kind, cfg, lora: LoraPlan, model_type: str, ds, eval_ds, trained, where) -> dict:
    """The plan `--dry-run` prints and the `plan` event carries."""
    t = cfg.training
    output_dir = Path(cfg.output_dir)
    lengths, truncated = trained.pop("lengths"), trained.pop("truncated")
    world = world_size()
    effective_batch = t.batch_size * t.gradient_accumulation_steps * world
    return {
        "kind": str(kind),
        "model": cfg.model,
        "model_type": model_type,
        "parameters": lora.parameters,
        "trainable_lora_parameters": lora.trainable,
        "target_modules": lora.target_modules,
        "data_format": getattr(cfg.dataset, "format", None) or "preference pairs",
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
        "device": where[0],
        "precision": where[1],
        "world_size": world,
        "sharding": where[3].strategy,
        "offload": where[3].offload,
        "output_dir": str(output_dir),
        "start": where[2],
        "checkpoints": str(output_dir / "checkpoint-<step>"),
        "metrics": str(output_dir / "metrics.jsonl"),
    }


def _sharding_row(plan: dict[str, Any]) -> str:
    strategy = plan["sharding"]
    if strategy == "none":
        return "none (every rank holds the whole model)"
    offload = f", offload {plan['offload']} to CPU" if plan["offload"] != "none" else ""
    return f"{strategy}{offload}"


def _plan_table(console: Console, cfg, plan: dict[str, Any], dry_run: bool) -> None:
    t, lora = cfg.training, cfg.lora
    n_params, n_lora = plan["parameters"], plan["trainable_lora_parameters"]
    console.table(
        f"{plan['kind']} plan" + (" (dry run: nothing written)" if dry_run else ""),
        ["", ""],
        [
            ["model", f"{cfg.model} ({plan['model_type']}, {n_params:,} parameters)"],
            [
                "LoRA",
                f"r={lora.r} alpha={lora.alpha:g} dropout={lora.dropout:g} on {plan['target_modules']} "
                f"→ {n_lora:,} trainable ({100 * n_lora / max(n_params, 1):.2f}%)",
            ],
            [
                "dataset",
                f"{plan['rows']} train rows ({plan['data_format']}); {plan['truncated_rows']} longer than "
                f"max_length={t.max_length}" + (", packed" if t.packing else ""),
            ],
            [
                "evaluation",
                f"{plan['eval_rows']} rows from {plan['eval_source']}, every {plan['eval_steps']} steps and at the end"
                if plan["eval_steps"]
                else "none (set dataset.eval_path, eval_split or eval_fraction)",
            ],
            ["tokens", f"max {plan['max_tokens']}, mean {plan['mean_tokens']:.1f}"],
            *_trained_row(plan),
            [
                "steps",
                f"{t.max_steps} × effective batch {plan['effective_batch_size']} "
                f"({t.batch_size}×{t.gradient_accumulation_steps}×{plan['world_size']} ranks) ≈ {plan['epochs']} epochs",
            ],
            ["device", f"{plan['device']} ({plan['precision']})"],
            ["sharding", _sharding_row(plan)],
            ["start", plan["start"]],
            [
                "outputs",
                f"{plan['output_dir']}/ (adapter, tokenizer, checkpoint-*, metrics.jsonl, run.json)",
            ],
        ],
    )


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
    from .. import data

    source = config_path
    if not is_main():
        console = Console("quiet")
    device_name, precision, sharding = _cheap_checks(cfg, source)
    model_config, tokenizer = _config_and_tokenizer(cfg, source)
    ds, eval_ds = data.datasets_for(kind.method, cfg.dataset, source, cfg.training.seed)
    if "messages" in ds.column_names and not tokenizer.chat_template:
        raise ConfigError(
            f"{source}: dataset.messages_field: the tokenizer of {cfg.model} has no chat template; use text_field or prompt_field + completion_field"
        )
    lora = _lora_plan(model_config, cfg)
    rows_for = _sft_rows if kind is TrainKind.FINETUNE else _dpo_pairs
    ds, eval_ds, trained = rows_for(ds, eval_ds, tokenizer, cfg.training, source)
    output_dir = Path(cfg.output_dir)
    resume_from, start = resolve_resume(cfg, output_dir, overwrite, source, dry_run=dry_run)
    where = (device_name, precision, start, sharding)
    plan = _plan(kind, cfg, lora, model_config.model_type, ds, eval_ds, trained, where)
    console.event("plan", **plan)
    if console.human:
        _plan_table(console, cfg, plan, dry_run)
    if dry_run:
        return None
    return Prepared(
        ds,
        eval_ds,
        tokenizer,
        model_config,
        lora.target_modules,
        lora.fan_in_fan_out,
        device_name,
        precision,
        resume_from,
        plan,
        source,
        sharding,
    )
