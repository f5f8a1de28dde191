"""LoRA supervised fine-tuning (trl SFTTrainer) and DPO alignment (trl DPOTrainer) with peft.

Outputs (design §6): the adapter and tokenizer in output_dir, `checkpoint-*` folders,
`metrics.jsonl` (one object per logged step, each step once even across resumes) and `run.json`.
Runs unchanged under `accelerate launch` / `torchrun`: only rank 0 writes outputs and logs.

DPO from an SFT adapter uses the merge route: the SFT adapter is merged into the base
(`merge_and_unload`) and a new LoRA is trained on top; with `ref_model=None` the reference is
that merged model with the new adapter disabled, i.e. exactly the SFT model (first loss ln 2).
The SFT adapter is copied into `output_dir/base_adapter/` so the output loads on its own
(`lexalign.inference.load`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import AlignConfig, FinetuneConfig, TrainConfigBase
from .console import Console
from .errors import ConfigError, RuntimeFailure
from .manifest import atomic_write_text

FINGERPRINT = "lexalign-fingerprint.json"
BASE_ADAPTER_DIR = "base_adapter"
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


# --------------------------------------------------------------------------------------------
# distributed environment
# --------------------------------------------------------------------------------------------


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return rank() == 0


# --------------------------------------------------------------------------------------------
# small pure helpers (unit-tested)
# --------------------------------------------------------------------------------------------


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


def checkpoint_step(path: Path) -> int | None:
    m = re.fullmatch(r"checkpoint-(\d+)", path.name)
    return int(m.group(1)) if m else None


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """Checkpoint folders that finished saving (trainer state and adapter present), oldest first."""
    if not output_dir.is_dir():
        return []
    found = []
    for p in output_dir.iterdir():
        step = checkpoint_step(p)
        if step is None or not p.is_dir():
            continue
        has_adapter = (p / "adapter_model.safetensors").is_file() or (
            p / "adapter_model.bin"
        ).is_file()
        if (p / "trainer_state.json").is_file() and has_adapter and (p / "scheduler.pt").is_file():
            found.append((step, p))
    return [p for _, p in sorted(found)]


def fingerprint(
    cfg: TrainConfigBase, kind: str, model_config_text: str, target_modules: Any
) -> dict[str, Any]:
    return {
        "kind": kind,
        "model": cfg.model,
        "model_config_sha256": hashlib.sha256(model_config_text.encode()).hexdigest(),
        "lora": {"r": cfg.lora.r, "alpha": cfg.lora.alpha, "target_modules": target_modules},
        "adapter": getattr(cfg, "adapter", None),
    }


def fingerprint_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    if old.get("model_config_sha256") != new.get("model_config_sha256"):
        out.append(f"base model differs ({old.get('model')} vs {new.get('model')})")
    for key in ("r", "alpha", "target_modules"):
        a, b = old.get("lora", {}).get(key), new.get("lora", {}).get(key)
        if a != b:
            out.append(f"lora.{key} differs ({a} vs {b})")
    if old.get("kind") != new.get("kind"):
        out.append(f"it is a {old.get('kind')} checkpoint, this is {new.get('kind')}")
    if old.get("adapter") != new.get("adapter"):
        out.append(f"adapter differs ({old.get('adapter')} vs {new.get('adapter')})")
    return out


def truncate_metrics(path: Path, upto_step: int) -> None:
    """Keep only the metrics up to `upto_step` (a resumed run logs the later steps again)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= upto_step:
                kept.append(line)
        except ValueError:
            continue  # a line cut short by a kill
    atomic_write_text(path, "".join(k + "\n" for k in kept))


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


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------


class Interrupt:
    """First Ctrl-C/SIGTERM: stop after the current step and save a checkpoint. Second: abort."""

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> None:
        def handler(signum, frame):
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True
            if is_main():
                sys.stderr.write(
                    "\ninterrupt: saving a checkpoint after this step (again to abort)\n"
                )

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                signal.signal(sig, handler)
            except ValueError:
                pass


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for dist in ("lexalign", "torch", "transformers", "trl", "peft", "accelerate", "datasets"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def _device() -> tuple[str, str]:
    import torch

    if torch.cuda.is_available():
        return "cuda", "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "cpu", "fp32"


def _resolve_resume(
    cfg: TrainConfigBase, output_dir: Path, overwrite: bool, source: str
) -> Path | None:
    mode = cfg.resume
    if mode == "never":
        if output_dir.exists() and any(output_dir.iterdir()):
            if not overwrite:
                raise ConfigError(
                    f"{source}: resume: never, but output_dir {output_dir} is not empty; pass --overwrite to start over, "
                    "or set resume: auto to continue"
                )
            if is_main():
                shutil.rmtree(output_dir)
        return None
    if mode == "auto":
        found = complete_checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(mode)
    if not path.is_dir() or checkpoint_step(path) is None:
        raise ConfigError(
            f"{source}: resume: {mode} is not a checkpoint-N folder; use auto, never, or a checkpoint path"
        )
    if path not in complete_checkpoints(path.parent):
        raise ConfigError(
            f"{source}: resume: {mode} is incomplete (no trainer state or adapter); pick another checkpoint"
        )
    return path


def run(
    kind: str,
    cfg: FinetuneConfig | AlignConfig,
    console: Console,
    *,
    config_path: str,
    dry_run: bool,
    overwrite: bool,
) -> int:
    source = config_path
    if cfg.quantization == "none" and "bitsandbytes" not in sys.modules:
        # peft imports bitsandbytes whenever it is installed; keep it out unless QLoRA is asked for.
        sys.modules["bitsandbytes"] = None  # type: ignore[assignment]
    if not is_main():
        console = Console("quiet")
    output_dir = Path(cfg.output_dir)

    # Cheap checks first (no torch yet).
    model_path = Path(cfg.model)
    if (cfg.model.startswith((".", "/")) or model_path.exists()) and not (
        model_path / "config.json"
    ).is_file():
        raise ConfigError(
            f"{source}: model: {cfg.model} has no config.json; give a model folder (e.g. a download output) or a Hub repo id"
        )
    adapter = getattr(cfg, "adapter", None)
    if adapter and not (Path(adapter) / "adapter_config.json").is_file():
        raise ConfigError(
            f"{source}: adapter: {adapter} has no adapter_config.json; point it at a finetune output_dir"
        )

    device, precision = _device()
    if cfg.quantization != "none" and device != "cuda":
        raise ConfigError(
            f"{source}: quantization: {cfg.quantization} needs a CUDA GPU (bitsandbytes QLoRA); this machine has none. "
            "Set quantization: none to train in fp32 on CPU"
        )

    from transformers import AutoConfig, AutoTokenizer

    from . import data

    try:
        model_config = AutoConfig.from_pretrained(cfg.model)
        tokenizer = AutoTokenizer.from_pretrained(cfg.model)
    except OSError as exc:
        raise ConfigError(
            f"{source}: model: cannot load {cfg.model}: {str(exc).splitlines()[0]}"
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    ds = (
        data.preference_dataset(cfg.dataset, source)
        if kind == "align"
        else data.sft_dataset(cfg.dataset, source)
    )
    if ds and "messages" in ds.column_names and not tokenizer.chat_template:
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
    t = cfg.training
    effective_batch = t.batch_size * t.gradient_accumulation_steps * world
    lengths = data.token_lengths(ds, tokenizer, "dpo" if kind == "align" else "sft")
    truncated = sum(1 for n in lengths if n > t.max_length)
    resume_from = None if dry_run else _resolve_resume(cfg, output_dir, overwrite, source)
    plan = {
        "kind": kind,
        "model": cfg.model,
        "model_type": model_config.model_type,
        "parameters": n_params,
        "trainable_lora_parameters": n_lora,
        "target_modules": target_modules,
        "rows": len(ds),
        "truncated_rows": truncated,
        "max_tokens": max(lengths),
        "mean_tokens": round(sum(lengths) / len(lengths), 1),
        "max_steps": t.max_steps,
        "effective_batch_size": effective_batch,
        "epochs": round(t.max_steps * effective_batch / len(ds), 2),
        "device": device,
        "precision": precision,
        "world_size": world,
        "output_dir": str(output_dir),
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
                    f"{len(ds)} rows ({ds.column_names}); {truncated} longer than max_length={t.max_length}",
                ],
                ["tokens", f"max {max(lengths)}, mean {sum(lengths) / len(lengths):.1f}"],
                [
                    "steps",
                    f"{t.max_steps} × effective batch {effective_batch} "
                    f"({t.batch_size}×{t.gradient_accumulation_steps}×{world} ranks) ≈ {plan['epochs']} epochs",
                ],
                ["device", f"{device} ({precision})"],
                [
                    "outputs",
                    f"{output_dir}/ (adapter, tokenizer, checkpoint-*, metrics.jsonl, run.json)",
                ],
            ],
        )
    if dry_run:
        return 0

    prepared = Prepared(
        ds,
        tokenizer,
        model_config,
        target_modules,
        fan_in_fan_out,
        device,
        precision,
        resume_from,
        plan,
        source,
    )
    return _train(kind, cfg, console, prepared)


@dataclass
class Prepared:
    """What `run` worked out before training: the data, tokenizer, LoRA targets, device, plan."""

    ds: Any
    tokenizer: Any
    model_config: Any
    target_modules: Any
    fan_in_fan_out: bool
    device: str
    precision: str
    resume_from: Path | None
    plan: dict[str, Any]
    source: str


def _train(kind: str, cfg: FinetuneConfig | AlignConfig, console: Console, p: Prepared) -> int:
    import torch
    from peft import LoraConfig, PeftModel
    from transformers import AutoModelForCausalLM, TrainerCallback

    ds, tokenizer, model_config, source = p.ds, p.tokenizer, p.model_config, p.source
    target_modules, fan_in_fan_out, device, precision = (
        p.target_modules,
        p.fan_in_fan_out,
        p.device,
        p.precision,
    )
    resume_from, plan = p.resume_from, p.plan
    output_dir = Path(cfg.output_dir)
    t = cfg.training
    started = time.time()
    config_text = model_config.to_json_string()
    fp = fingerprint(cfg, kind, config_text, target_modules)
    resumed_step = None
    if resume_from is not None:
        old_fp_path = resume_from / FINGERPRINT
        if old_fp_path.is_file():
            diffs = fingerprint_differences(json.loads(old_fp_path.read_text()), fp)
            if diffs:
                raise ConfigError(
                    f"{source}: cannot resume from {resume_from}: "
                    + "; ".join(diffs)
                    + "; use another output_dir or resume: never with --overwrite"
                )
        resumed_step = checkpoint_step(resume_from)
        console.info(f"resuming from {resume_from} (step {resumed_step})")

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    load_kwargs: dict[str, Any] = {"dtype": dtype}
    if cfg.quantization != "none":
        from transformers import BitsAndBytesConfig  # imports bitsandbytes only here

        load_kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=cfg.quantization == "4bit",
            load_in_8bit=cfg.quantization == "8bit",
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=True,
        )
        load_kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    model = AutoModelForCausalLM.from_pretrained(cfg.model, **load_kwargs)
    if cfg.quantization != "none":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=t.gradient_checkpointing
        )

    adapter = getattr(cfg, "adapter", None)
    if kind == "align" and adapter:
        # The merge route: SFT weights become the base, so the DPO reference is the SFT model.
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        if hasattr(model, "peft_config"):
            del model.peft_config  # merged: a plain model again
        console.info(f"merged the SFT adapter {adapter} into the base; it is the DPO reference")

    console.info(
        f"LoRA target modules ({'auto' if cfg.lora.target_modules == 'auto' else 'configured'}): {target_modules}"
    )
    peft_config = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=target_modules,
        fan_in_fan_out=fan_in_fan_out,
        bias="none",
        task_type="CAUSAL_LM",
    )

    common = dict(
        output_dir=str(output_dir),
        max_steps=t.max_steps,
        learning_rate=t.learning_rate,
        per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        seed=t.seed,
        data_seed=t.seed,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        warmup_steps=t.warmup_steps,
        lr_scheduler_type=t.lr_scheduler,
        max_length=t.max_length,
        report_to=[],
        disable_tqdm=True,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device == "cpu",
        gradient_checkpointing=t.gradient_checkpointing,
        ddp_find_unused_parameters=False,
        dataloader_num_workers=0,
        remove_unused_columns=True,
    )

    interrupt = Interrupt()
    metrics_path = output_dir / "metrics.jsonl"
    if is_main():
        output_dir.mkdir(parents=True, exist_ok=True)
        if resumed_step is not None:
            truncate_metrics(metrics_path, resumed_step)
        elif metrics_path.exists():
            metrics_path.unlink()
    state: dict[str, Any] = {"first_loss": None, "last_loss": None, "t0": None, "tokens": 0}

    class LexAlignCallback(TrainerCallback):
        def on_train_begin(self, args, st, control, **kw):
            state["t0"] = time.time()
            state["step0"] = st.global_step
            state["tokens"] = 0

        def on_step_end(self, args, st, control, **kw):
            if step_delay:
                time.sleep(
                    step_delay
                )  # LEXALIGN_STEP_DELAY_S: slows steps so tests can interrupt mid-run
            if interrupt.requested:
                control.should_save = True
                control.should_training_stop = True

        def on_log(self, args, st, control, logs=None, **kw):
            if not logs or "loss" not in logs or not st.is_world_process_zero:
                return
            elapsed = max(time.time() - (state["t0"] or time.time()), 1e-9)
            done = st.global_step - state.get("step0", 0)
            tokens = state["tokens"] * world_size()
            record = {
                "step": st.global_step,
                **{k: v for k, v in logs.items() if isinstance(v, (int, float))},
            }
            record["tokens_per_s"] = round(tokens / elapsed, 1)
            record["time"] = round(time.time(), 3)
            with metrics_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
            if state["first_loss"] is None:
                state["first_loss"] = logs["loss"]
            state["last_loss"] = logs["loss"]
            eta = (st.max_steps - st.global_step) * elapsed / max(done, 1)
            console.event("step", **record, eta_s=round(eta, 1))
            console.info(
                f"step {st.global_step}/{st.max_steps}  loss {logs['loss']:.4f}  lr {logs.get('learning_rate', 0):.2e}  "
                f"{record['tokens_per_s']:.0f} tok/s  ETA {eta:.0f}s"
            )

        def on_save(self, args, st, control, **kw):
            if st.is_world_process_zero:
                ckpt = output_dir / f"checkpoint-{st.global_step}"
                if ckpt.is_dir():
                    atomic_write_text(ckpt / FINGERPRINT, json.dumps(fp, indent=2) + "\n")
                    if adapter:
                        _copy_adapter(Path(adapter), ckpt / BASE_ADAPTER_DIR)

    rank_report = os.environ.get("LEXALIGN_RANK_REPORT")
    step_delay = float(os.environ.get("LEXALIGN_STEP_DELAY_S", "0") or 0)

    # trl wraps the model with peft before Trainer seeds anything: seed first, so the LoRA
    # initialisation (and with it the whole run) is reproducible.
    from transformers import set_seed

    set_seed(t.seed)
    if kind == "align":
        from trl import DPOConfig, DPOTrainer

        trainer_cls, args, extra = (
            DPOTrainer,
            DPOConfig(**common, beta=cfg.beta),
            {"ref_model": None},
        )
    else:
        from trl import SFTConfig, SFTTrainer

        trainer_cls, args, extra = (
            SFTTrainer,
            SFTConfig(**common, dataset_text_field="text", packing=False),
            {},
        )
    trainer = _cpu_resume_fix(trainer_cls)(
        model=model,
        args=args,
        train_dataset=ds,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[LexAlignCallback()],
        **extra,
    )

    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # our callback prints progress
    _count_tokens(trainer, state)
    if rank_report:
        _report_rank_batches(trainer, Path(rank_report))

    interrupt.install()
    try:
        result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except KeyboardInterrupt:
        raise
    except torch.OutOfMemoryError as exc:
        raise RuntimeFailure(
            f"out of memory: {str(exc).splitlines()[0]}; lower training.batch_size or max_length"
        ) from exc

    final_step = trainer.state.global_step

    def write_run(status: str, train_loss: float | None = None) -> None:
        """run.json (design §6): the resolved config, versions, times, losses, resume point."""
        if not is_main():
            return
        data = {
            "kind": kind,
            "status": status,
            "config": cfg.model_dump(mode="json"),
            "versions": _versions(),
            "start_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "end_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": round(time.time() - started, 2),
            "final_step": final_step,
            "final_loss": state["last_loss"],
            "first_loss": state["first_loss"],
            "train_loss": train_loss,
            "resumed_from_step": resumed_step,
            "world_size": world_size(),
            "device": device,
            "precision": precision,
            "target_modules": target_modules,
            "trainable_lora_parameters": plan["trainable_lora_parameters"],
            "base_model": cfg.model,
            "base_adapter": BASE_ADAPTER_DIR if adapter else None,
            "fingerprint": fp,
        }
        atomic_write_text(output_dir / "run.json", json.dumps(data, indent=2, default=str) + "\n")

    if interrupt.requested:
        console.info(
            f"interrupted at step {final_step}; checkpoint saved in {output_dir}/checkpoint-{final_step}. "
            "Run the same command again to resume."
        )
        write_run("interrupted")
        return 130

    trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(output_dir))
        if adapter:
            _copy_adapter(Path(adapter), output_dir / BASE_ADAPTER_DIR)
        atomic_write_text(output_dir / FINGERPRINT, json.dumps(fp, indent=2) + "\n")
        write_run("completed", train_loss=getattr(result, "training_loss", None))
        console.event(
            "summary",
            status="completed",
            steps=final_step,
            final_loss=state["last_loss"],
            output_dir=str(output_dir),
        )
        console.info(
            f"done: {final_step} steps, final loss {state['last_loss']}, adapter in {output_dir}"
        )
    return 0


def _copy_adapter(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)


def _cpu_resume_fix(trainer_cls):
    """transformers loads the optimizer onto `args.device` when world_size > 1; on CPU that is
    `cpu:0`, which torch cannot restore storages to. Map it to plain `cpu`."""
    import torch

    class Fixed(trainer_cls):  # type: ignore[misc, valid-type]
        def _load_optimizer_and_scheduler(self, checkpoint):
            if checkpoint is None or self.args.device.type != "cpu":
                return super()._load_optimizer_and_scheduler(checkpoint)
            original = torch.load

            def load(*a, **kw):
                loc = kw.get("map_location")
                if isinstance(loc, torch.device) and loc.type == "cpu":
                    kw["map_location"] = "cpu"
                return original(*a, **kw)

            torch.load = load
            try:
                return super()._load_optimizer_and_scheduler(checkpoint)
            finally:
                torch.load = original

    Fixed.__name__ = trainer_cls.__name__
    return Fixed


def _count_tokens(trainer, state: dict[str, Any]) -> None:
    """Count the (non-padding) tokens each training step sees, for tokens/s."""
    original = trainer.training_step

    def training_step(model, inputs, *a, **kw):
        for key, value in inputs.items():
            if key.endswith("attention_mask") and hasattr(value, "sum"):
                state["tokens"] += int(value.sum())
        return original(model, inputs, *a, **kw)

    trainer.training_step = training_step


def _report_rank_batches(trainer, folder: Path) -> None:
    """Test hook (LEXALIGN_RANK_REPORT=DIR): each rank records the world size and a digest of
    the first batches it trains on, to prove data parallelism split the data."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    seen: list[str] = []
    original = trainer.training_step

    def training_step(model, inputs, *a, **kw):
        if len(seen) < 4 and "input_ids" in inputs:
            seen.append(
                hashlib.sha256(inputs["input_ids"].cpu().numpy().tobytes()).hexdigest()[:16]
            )
            atomic_write_text(
                folder / f"rank-{rank()}.json",
                json.dumps(
                    {
                        "rank": rank(),
                        "world_size": world_size(),
                        "torch_world_size": torch.distributed.get_world_size()
                        if torch.distributed.is_initialized()
                        else 1,
                        "batches": seen,
                    }
                ),
            )
        return original(model, inputs, *a, **kw)

    trainer.training_step = training_step
