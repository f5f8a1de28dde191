"""The training run: load the weights (QLoRA on CUDA when asked), merge an SFT adapter for DPO
(the merge route: the SFT model becomes the DPO reference, first loss ln 2), train with trl's
SFTTrainer or DPOTrainer and peft, and write the outputs. Only rank 0 writes. A signal stops
the run at a checkpoint (preempt.py).

Over 400 lines: the run's steps in order (load, build the trainer, fit, write), each a short
function; splitting them would scatter one sequence.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..console import Console
from ..errors import ConfigError, RuntimeFailure
from ..io import atomic_write_text
from ..kinds import TrainKind
from ..plot import loss_svg, read_rows
from ..tracking import read_record
from ..trainconfig import AlignConfig, FinetuneConfig
from .callbacks import TrainState, count_tokens, make_callback, report_rank_batches
from .compat import cpu_resume_fix, keep_epoch_on_resume
from .dist import is_main, world_size
from .environment import check_ranks_agree, differences, environment, read_env_file
from .outputs import (
    BASE_ADAPTER_DIR,
    FINGERPRINT,
    checkpoint_step,
    copy_adapter,
    eval_summary,
    fingerprint,
    fingerprint_differences,
    truncate_metrics,
    utc,
    versions,
    write_run_json,
)
from .plan import Prepared
from .preempt import Preemption
from .sharding import (
    arguments,
    check_what_runs,
    compile_failure,
    distributed_record,
    load_partitioned,
    merge_adapter,
    prepare_process,
    trainer_arguments,
    zero3_adapter_save,
)


def _resume_point(cfg, kind, p: Prepared, fp: dict[str, Any], env, console: Console) -> int | None:
    """The step a resumed run continues from (None for a fresh start); refuses a checkpoint of
    another base model or LoRA shape, warns when it came from another environment."""
    resume_from = p.resume_from
    if resume_from is None:
        return None
    old_fp_path = resume_from / FINGERPRINT
    if old_fp_path.is_file():
        diffs = fingerprint_differences(json.loads(old_fp_path.read_text()), fp)
        if diffs:
            raise ConfigError(
                f"{p.source}: cannot resume from {resume_from}: "
                + "; ".join(diffs)
                + "; use another output_dir or resume: never with --overwrite"
            )
    step = checkpoint_step(resume_from)
    console.info(f"resuming from {resume_from} (step {step})")
    diffs = differences(read_env_file(resume_from), env)
    if diffs:
        console.warn(
            f"{resume_from} was trained in another environment ({'; '.join(diffs)}); resuming anyway"
        )
    return step


def _load_model(kind: TrainKind, cfg, p: Prepared, env, console: Console):
    """The base weights (quantized on CUDA when asked), with an SFT adapter merged for DPO."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    t = cfg.training
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[p.precision]
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
        if not p.sharding.uses_deepspeed:
            load_kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    # ZeRO-3: built partitioned, loaded a tensor at a time (sharding.load_partitioned)
    model = None if cfg.quantization != "none" else load_partitioned(cfg.model, dtype, console)
    if model is None:
        model = AutoModelForCausalLM.from_pretrained(cfg.model, **load_kwargs)
    if cfg.quantization != "none":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=t.gradient_checkpointing
        )

    adapter = getattr(cfg, "adapter", None)
    if kind is TrainKind.ALIGN and adapter:
        # The merge route: SFT weights become the base, so the DPO reference is the SFT model.
        model = merge_adapter(PeftModel.from_pretrained(model, adapter))
        console.info(f"merged the SFT adapter {adapter} into the base; it is the DPO reference")
        try:
            recorded = json.loads((Path(adapter) / "run.json").read_text()).get("environment")
        except (OSError, ValueError):
            recorded = None
        diffs = differences(recorded, env)
        if diffs:
            console.warn(
                f"the SFT adapter {adapter} was trained in another environment ({'; '.join(diffs)})"
            )
    return model


def _data_summary(plan: dict[str, Any]) -> dict[str, Any] | None:
    """What the rows trained on (finetune): for run.json and the summary."""
    keys = ("loss_on", "rows_total", "rows_dropped", "dropped", "tokens_total", "tokens_trained")
    return {k: plan[k] for k in keys} if "loss_on" in plan else None


def _trainer_setup(kind: TrainKind, cfg, p: Prepared, output_dir: Path, eval_ds):
    """trl's trainer class, its arguments, extra keyword arguments and the eval interval. Made
    before the model loads: with ZeRO-3 the arguments make `from_pretrained` load it
    partitioned."""
    t = cfg.training
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
        # always an explicit list (transformers' default "all" switches on every tracker that
        # is installed); MLflow and W&B are LexAlign's own clients (tracking/), not these
        report_to=["tensorboard"] if "tensorboard" in t.report_to else [],
        logging_dir=str(output_dir / "tensorboard"),
        disable_tqdm=True,
        bf16=p.precision == "bf16",
        fp16=p.precision == "fp16",
        use_cpu=p.device == "cpu",
        gradient_checkpointing=t.gradient_checkpointing,
        ddp_find_unused_parameters=False,
        dataloader_num_workers=0,
        remove_unused_columns=True,
        **trainer_arguments(p.sharding, p.model_config),
    )
    eval_steps = (t.eval_steps or t.save_steps) if eval_ds is not None else None
    if eval_steps:
        common.update(
            eval_strategy="steps",
            eval_steps=eval_steps,
            per_device_eval_batch_size=t.batch_size,
            metric_for_best_model="eval_loss",
            greater_is_better=False,
        )
    if kind is TrainKind.ALIGN:
        from trl import DPOConfig, DPOTrainer

        from .compat import pretokenized_dpo

        args = arguments(DPOConfig, p.source, **common, beta=cfg.beta)
        return pretokenized_dpo(DPOTrainer), args, {"ref_model": None}, eval_steps
    from trl import SFTConfig, SFTTrainer

    args = arguments(SFTConfig, p.source, **common, dataset_text_field="text", packing=t.packing)
    return SFTTrainer, args, {}, eval_steps


@dataclass
class Run:
    """One training run's context, shared by its steps."""

    kind: TrainKind
    cfg: Any
    console: Console
    p: Prepared
    output_dir: Path
    started: float
    fingerprint: dict[str, Any]
    environment: dict[str, Any]
    resumed_step: int | None
    state: TrainState | None = None
    trainer: Any = None
    distributed: dict[str, Any] | None = None


def train(
    kind: TrainKind,
    cfg: FinetuneConfig | AlignConfig,
    console: Console,
    p: Prepared,
    preemption: Preemption,
) -> int:
    """Load the weights, train with trl, and write the outputs. Returns the exit code."""
    fp = fingerprint(cfg, kind, p.model_config.to_json_string(), p.target_modules)
    env = environment()
    run = Run(
        kind, cfg, console, p, Path(cfg.output_dir), time.time(), fp, env,
        _resume_point(cfg, kind, p, fp, env, console),
    )  # fmt: skip
    prepare_process(p.sharding)
    # The arguments exist before the weights load: under ZeRO-3 they load partitioned.
    setup = _trainer_setup(kind, cfg, p, run.output_dir, p.eval_ds)
    # The process group is up once the arguments know their device: every rank now proves it
    # runs the same environment as the others (nodes that differ stop here, all of them).
    _ = setup[1].device
    check_ranks_agree(run.environment)
    model = _load_model(kind, cfg, p, env, console)
    run.trainer = _build_trainer(run, model, preemption, setup)
    result = _fit(run, preemption)
    final_step = run.trainer.state.global_step
    if preemption.requested and final_step < cfg.training.max_steps:
        if run.trainer.is_world_process_zero():
            console.info(
                f"{preemption.status} at step {final_step}; checkpoint saved in "
                f"{run.output_dir}/checkpoint-{final_step}. Run the same command again to resume."
            )
            _write_run(run, preemption.status)
            console.event("summary", status=preemption.status, steps=final_step)
        return preemption.exit_code
    _finish(run, getattr(result, "training_loss", None))
    return 0


def _peft_config(run: Run):
    from peft import LoraConfig

    cfg, p = run.cfg, run.p
    run.console.info(
        f"LoRA target modules ({'auto' if cfg.lora.target_modules == 'auto' else 'configured'}): {p.target_modules}"
    )
    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=p.target_modules,
        fan_in_fan_out=p.fan_in_fan_out,
        bias="none",
        task_type="CAUSAL_LM",
    )


def _build_trainer(run: Run, model, preemption: Preemption, setup):
    """trl's trainer with peft, our callback, seeded; the ranks agree on the environment, and
    what accelerate set up is what the config asks for."""
    cfg, p = run.cfg, run.p
    peft_config = _peft_config(run)
    trainer_cls, args, extra, eval_steps = setup
    run.state = state = TrainState(
        output_dir=run.output_dir,
        fingerprint=run.fingerprint,
        adapter=getattr(cfg, "adapter", None),
        eval_steps=eval_steps,
        environment=run.environment,
    )
    if is_main():
        run.output_dir.mkdir(parents=True, exist_ok=True)
        if run.resumed_step is not None:
            truncate_metrics(state.metrics_path, run.resumed_step)
        elif state.metrics_path.exists():
            state.metrics_path.unlink()
    state.trackers = _start_trackers(run)
    # trl wraps the model with peft before Trainer seeds anything: seed first, so the LoRA
    # initialisation (and with it the whole run) is reproducible.
    from transformers import set_seed

    set_seed(cfg.training.seed)
    keep_epoch_on_resume()
    trainer = zero3_adapter_save(cpu_resume_fix(trainer_cls))(
        model=model,
        args=args,
        train_dataset=p.ds,
        eval_dataset=p.eval_ds,
        processing_class=p.tokenizer,
        peft_config=peft_config,
        callbacks=[make_callback(state, preemption, run.console)],
        **extra,
    )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # our callback prints progress
    run.distributed = distributed_record(trainer, p.sharding)
    check_what_runs(run.distributed, p.sharding, p.source)
    count_tokens(trainer, state)
    report_rank_batches(trainer)
    return trainer


def _start_trackers(run: Run):
    """The trackers report_to names (rank 0; each connects on a thread of its own)."""
    from ..tracking import session

    env = run.environment
    tags = {
        "lexalign.kind": str(run.kind),
        "lexalign.image_digest": env.get("image_digest") or env.get("image_id") or "unknown",
        "lexalign.lock_sha256": env.get("lock_sha256") or "unknown",
        "lexalign.git_revision": os.environ.get("LEXALIGN_GIT_REVISION") or "unknown",
        "lexalign.world_size": str(world_size()),
    }
    config = run.cfg.model_dump(mode="json")
    return session.start(
        run.cfg.training.report_to, run.output_dir, config, run.p.source, tags, run.console
    )


def _fit(run: Run, preemption: Preemption):
    """trainer.train, resumed when there is a checkpoint; out of memory in one line."""
    import warnings

    import torch

    # transformers falls back to numbered checkpoint order on filesystems with coarse mtimes
    # (bind mounts); that order is what we want anyway.
    warnings.filterwarnings("ignore", message="mtime may not be reliable")
    # From here a signal finishes the step in flight and saves a checkpoint at it.
    preemption.training = True
    resume = str(run.p.resume_from) if run.p.resume_from else None
    try:
        return run.trainer.train(resume_from_checkpoint=resume)
    except KeyboardInterrupt:
        raise
    except torch.OutOfMemoryError as exc:
        raise RuntimeFailure(
            f"out of memory: {str(exc).splitlines()[0]}; lower training.batch_size or max_length"
        ) from exc
    except Exception as exc:
        failure = compile_failure(exc) if run.p.sharding.uses_deepspeed else None
        if failure is None:
            raise
        if is_main() and run.output_dir.is_dir() and not any(run.output_dir.iterdir()):
            run.output_dir.rmdir()  # nothing trained: leave nothing behind
        raise failure from exc


def _write_run(run: Run, status: str, train_loss: float | None = None) -> dict[str, Any] | None:
    """run.json (docs/cli.md): the resolved config, versions, times, losses, resume point,
    evaluation summary, data and environment; loss.svg beside it. Rank 0 only."""
    trainer, cfg, p, state = run.trainer, run.cfg, run.p, run.state
    if not trainer.is_world_process_zero():
        return None
    assert state is not None
    rows = read_rows(state.metrics_path)
    summary = eval_summary(rows)
    best_ckpt = run.output_dir / f"checkpoint-{summary['best_step']}" if summary else None
    atomic_write_text(run.output_dir / "loss.svg", loss_svg(rows, f"{run.kind} — {cfg.model}"))
    if state.trackers:
        state.trackers.drain()  # their run ids are recorded before run.json is written
    now = time.time()
    write_run_json(
        run.output_dir,
        {
            "kind": str(run.kind),
            "method": run.kind.method,
            "status": status,
            "config": cfg.model_dump(mode="json"),
            "versions": versions(),
            "start_time": utc(run.started),
            "end_time": utc(now),
            "seconds": round(now - run.started, 2),
            "final_step": trainer.state.global_step,
            "final_loss": state.last_loss,
            "first_loss": state.first_loss,
            "train_loss": train_loss,
            "resumed_from_step": run.resumed_step,
            "world_size": world_size(),
            "distributed": run.distributed,
            "device": p.device,
            "precision": p.precision,
            "target_modules": p.target_modules,
            "trainable_lora_parameters": p.plan["trainable_lora_parameters"],
            "base_model": cfg.model,
            "base_adapter": BASE_ADAPTER_DIR if getattr(cfg, "adapter", None) else None,
            "fingerprint": run.fingerprint,
            "eval": summary,
            "data": _data_summary(p.plan),
            "best_checkpoint": str(best_ckpt) if best_ckpt and best_ckpt.is_dir() else None,
            "environment": run.environment,
            "trackers": read_record(run.output_dir) or None,
        },
    )
    if state.trackers:
        state.trackers.finish(status, [run.output_dir / "run.json", run.output_dir / "loss.svg"])
    return summary


def _finish(run: Run, train_loss: float | None) -> None:
    """The adapter, tokenizer, fingerprint, run.json and the summary of a completed run."""
    trainer, output_dir, console, state = run.trainer, run.output_dir, run.console, run.state
    trainer.save_model(str(output_dir))
    if not trainer.is_world_process_zero():
        return
    assert state is not None
    run.p.tokenizer.save_pretrained(str(output_dir))
    adapter = getattr(run.cfg, "adapter", None)
    if adapter:
        copy_adapter(Path(adapter), output_dir / BASE_ADAPTER_DIR)
    atomic_write_text(output_dir / FINGERPRINT, json.dumps(run.fingerprint, indent=2) + "\n")
    summary = _write_run(run, "completed", train_loss=train_loss)
    final_step = trainer.state.global_step
    console.event(
        "summary",
        status="completed",
        steps=final_step,
        final_loss=state.last_loss,
        eval=summary,
        data=_data_summary(run.p.plan),
        output_dir=str(output_dir),
    )
    if run.p.plan.get("rows_dropped"):
        dropped = ", ".join(f"{n} {why}" for why, n in run.p.plan["dropped"].items())
        console.info(f"rows dropped before training (nothing to train in them): {dropped}")
    if summary:
        console.info(
            f"eval loss {summary['first_loss']:.4f} → {summary['last_loss']:.4f}; best "
            f"{summary['best_loss']:.4f} at step {summary['best_step']} "
            f"({output_dir}/checkpoint-{summary['best_step']})"
        )
    console.info(
        f"done: {final_step} steps, final loss {state.last_loss}, adapter in {output_dir}, "
        f"curve in {output_dir}/loss.svg"
    )
