"""What runs inside the trainer's loop: a typed state shared by the callback and the token
counter, the metrics/progress callback (which also stops every rank at one step on a signal), and the test hooks (lexalign.testing)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import testing
from ..console import Console
from ..io import atomic_write_text
from .dist import barrier, rank, world_size
from .environment import write_env_file
from .outputs import (
    BASE_ADAPTER_DIR,
    CHECKPOINT_FORMAT,
    FINGERPRINT,
    append_metrics,
    copy_adapter,
    mark_complete,
)
from .preempt import Preemption


@dataclass
class TrainState:
    """Shared by the callback (metrics, progress) and the token counter."""

    output_dir: Path
    fingerprint: dict[str, Any]
    adapter: str | None
    first_loss: float | None = None
    last_loss: float | None = None
    t0: float | None = None
    step0: int = 0
    tokens: int = 0
    eval_steps: int | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    trackers: Any = None  # tracking.session.Trackers: gets every metrics.jsonl row (rank 0)

    @property
    def metrics_path(self) -> Path:
        return self.output_dir / "metrics.jsonl"


def make_callback(state: TrainState, preemption: Preemption, console: Console):
    """The trainer callback: metrics.jsonl rows, the progress line, checkpoint extras, stopping
    on a signal (every rank at the same step)."""
    from transformers import TrainerCallback

    cls = type("LexAlignCallback", (LexAlignEvents, TrainerCallback), {})
    return cls(state, preemption, console)


class LexAlignEvents:
    """What LexAlign does on the trainer's events (mixed into transformers' TrainerCallback by
    make_callback, so this module imports no transformers)."""

    def __init__(self, state: TrainState, preemption: Preemption, console: Console) -> None:
        self.state, self.preemption, self.console = state, preemption, console
        self.step_delay = float(testing.hook("step_delay_s") or 0)
        self.save_delay = float(testing.hook("save_delay_s") or 0)

    def on_train_begin(self, args, st, control, **kw):
        # The model is wrapped now (DDP, DeepSpeed), and wrapping may draw random numbers
        # (ZeRO-3 does): the first step's dropout starts from the seed whatever the sharding, so
        # DDP and ZeRO train the same. A resumed run restores the checkpoint's RNG after this.
        from transformers import set_seed

        set_seed(args.seed)
        self.state.t0 = time.time()
        self.state.step0 = st.global_step
        self.state.tokens = 0

    def on_step_end(self, args, st, control, **kw):
        if self.step_delay:
            time.sleep(self.step_delay)
        if self.preemption.agree(args.device):
            control.should_save = True
            control.should_training_stop = True
        elif self.state.eval_steps and st.global_step >= st.max_steps:
            # Evaluate the final adapter too, so eval.last_loss describes what is saved.
            control.should_evaluate = True

    def on_evaluate(self, args, st, control, metrics=None, **kw):
        loss = (metrics or {}).get("eval_loss")
        if loss is not None and (st.best_metric is None or loss < st.best_metric):
            control.should_save = True  # keep a checkpoint of the best step (rotation spares it)

    def on_log(self, args, st, control, logs=None, **kw):
        if not logs or not st.is_world_process_zero:
            return
        if "eval_loss" in logs:
            self._eval_row(st, logs)
        elif "loss" in logs:
            self._train_row(st, logs)

    def _eval_row(self, st, logs) -> None:
        record = {
            "step": st.global_step,
            **{k: v for k, v in logs.items() if isinstance(v, int | float)},
            "time": round(time.time(), 3),
        }
        append_metrics(self.state.metrics_path, record)
        if self.state.trackers:
            self.state.trackers.log(record)
        self.console.event("eval", **record)
        best = st.best_metric if st.best_metric is not None else logs["eval_loss"]
        self.console.info(
            f"eval  step {st.global_step}/{st.max_steps}  eval_loss {logs['eval_loss']:.4f}  "
            f"(best so far {min(best, logs['eval_loss']):.4f})"
        )

    def _train_row(self, st, logs) -> None:
        state = self.state
        elapsed = max(time.time() - (state.t0 or time.time()), 1e-9)
        done = st.global_step - state.step0
        record = {
            "step": st.global_step,
            **{k: v for k, v in logs.items() if isinstance(v, int | float)},
        }
        record["tokens_per_s"] = round(state.tokens * world_size() / elapsed, 1)
        record["steps_per_s"] = round(done / elapsed, 3)
        record["time"] = round(time.time(), 3)
        append_metrics(state.metrics_path, record)
        if state.trackers:
            state.trackers.log(record)
        if state.first_loss is None:
            state.first_loss = logs["loss"]
        state.last_loss = logs["loss"]
        eta = (st.max_steps - st.global_step) * elapsed / max(done, 1)
        self.console.event("step", **record, eta_s=round(eta, 1))
        self.console.info(
            f"step {st.global_step}/{st.max_steps}  loss {logs['loss']:.4f}  lr {logs.get('learning_rate', 0):.2e}  "
            f"{record['steps_per_s']:.2f} steps/s  {record['tokens_per_s']:.0f} tok/s  "
            f"{_duration(eta)} left"
        )

    def on_save(self, args, st, control, **kw):
        state = self.state
        ckpt = state.output_dir / f"checkpoint-{st.global_step}"
        if st.is_world_process_zero and ckpt.is_dir():
            # the format key tells resume that this checkpoint is complete only with its mark
            fp = {**state.fingerprint, "checkpoint_format": CHECKPOINT_FORMAT}
            atomic_write_text(ckpt / FINGERPRINT, json.dumps(fp, indent=2) + "\n")
            if state.adapter:
                copy_adapter(Path(state.adapter), ckpt / BASE_ADAPTER_DIR)
            if state.environment:
                write_env_file(ckpt, state.environment)
        if self.save_delay:
            time.sleep(self.save_delay)
        # every rank has written its part (RNG state) before the checkpoint is marked
        barrier()
        if st.is_world_process_zero and ckpt.is_dir():
            mark_complete(ckpt, st.global_step)

    def on_train_end(self, args, st, control, model=None, **kw):
        report_params(model)


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def count_tokens(trainer, state: TrainState) -> None:
    """Count the (non-padding) tokens each training step sees, for tokens/s."""
    original = trainer.training_step

    def training_step(model, inputs, *a, **kw):
        masks = [v for k, v in inputs.items() if k.endswith("attention_mask") and hasattr(v, "sum")]
        if masks:
            state.tokens += sum(int(m.sum()) for m in masks)
        elif hasattr(inputs.get("input_ids"), "numel"):
            state.tokens += int(inputs["input_ids"].numel())  # padding-free (packed): no padding
        return original(model, inputs, *a, **kw)

    trainer.training_step = training_step


def report_rank_batches(trainer) -> None:
    """Test hook `rank_report` (a folder): each rank records the world size and a digest of the
    first batches it trains on, to prove data parallelism split the data."""
    folder = testing.hook("rank_report")
    if not folder:
        return

    import torch

    folder = Path(folder)
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
                        "pid": os.getpid(),
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


def report_params(model) -> None:
    """Test hook `rank_report`: each rank records a digest of its trainable (LoRA) weights at
    the end, to prove every rank holds the same adapter."""
    folder = testing.hook("rank_report")
    if not folder or model is None:
        return
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters(), key=lambda x: x[0]):
        if p.requires_grad:
            h.update(name.encode())
            h.update(p.detach().float().cpu().numpy().tobytes())
    atomic_write_text(
        Path(folder) / f"params-{rank()}.json",
        json.dumps({"rank": rank(), "trainable_sha256": h.hexdigest()}),
    )
