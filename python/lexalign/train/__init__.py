"""LoRA supervised fine-tuning (trl SFTTrainer) and DPO alignment (trl DPOTrainer) with peft.

plan.py checks and plans a run before weights load; loop.py trains; callbacks.py holds what
runs inside the trainer (typed state, metrics, test hooks); preempt.py stopping on a signal
at a checkpoint (SIGTERM/SIGUSR1 → exit 75); outputs.py what a run
leaves in output_dir; compat.py the shims over the pinned libraries; dist.py the rank.

Outputs (docs/cli.md): the adapter and tokenizer in output_dir, `checkpoint-*` folders,
`metrics.jsonl` (one object per logged step, each step once even across resumes) and `run.json`.
Runs unchanged under `accelerate launch` / `torchrun`: only rank 0 writes outputs and logs.
"""

from __future__ import annotations

from ..console import Console
from ..kinds import TrainKind
from ..trainconfig import AlignConfig, FinetuneConfig
from .compat import keep_bitsandbytes_out
from .outputs import complete_checkpoints, fingerprint_differences, truncate_metrics
from .plan import choose_target_modules

__all__ = [
    "choose_target_modules",
    "complete_checkpoints",
    "fingerprint_differences",
    "run",
    "truncate_metrics",
]


def run(
    kind: TrainKind,
    cfg: FinetuneConfig | AlignConfig,
    console: Console,
    *,
    config_path: str,
    dry_run: bool,
    overwrite: bool,
) -> int:
    keep_bitsandbytes_out(cfg.quantization)
    from .plan import prepare
    from .preempt import Preemption

    # from the first moment: a SIGTERM while the weights load exits 75 at once, saving nothing
    preemption = Preemption()
    if not dry_run:
        preemption.install()

    prepared = prepare(
        kind, cfg, console, config_path=config_path, dry_run=dry_run, overwrite=overwrite
    )
    if prepared is None:
        return 0
    from .. import testing

    if testing.hook("signal_before_train"):
        import os
        import signal

        os.kill(os.getpid(), getattr(signal, testing.hook("signal_before_train")))
    from . import dist
    from .loop import train

    code = train(kind, cfg, console, prepared, preemption)
    dist.close()
    return code
