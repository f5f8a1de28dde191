"""Stopping a training run on a signal without losing work.

- SIGTERM and SIGUSR1 (what SLURM sends on `scancel`, at the time limit and on preemption,
  what Kubernetes and `docker stop` send) mean *preempted*: finish the optimizer step in
  flight, save a full checkpoint at it, write run.json with `"status": "preempted"` and exit
  with EXIT_PREEMPTED (75). `resume: auto` continues from that checkpoint.
- Before the first step (loading weights, data) SIGTERM/SIGUSR1 save nothing and exit 75 at
  once (PreemptedBeforeStart).
- SIGINT (Ctrl-C) means *interrupted*: the same save, `"status": "interrupted"`, exit 130.
- A second signal, once the first is more than `DUPLICATE_WINDOW_S` old, exits at once
  (without finishing the save: the checkpoint being written has no completion mark, so resume
  ignores it and the previous one stays valid). Launchers deliver one signal several times
  (SLURM signals every process of a step, torchrun forwards the one it got), so copies that
  arrive within the window count as one.
- Under torchrun every rank must stop at the same step: the ranks agree after each step (one
  MAX all-reduce of a flag), so a signal seen by any rank stops all of them there.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from ..errors import EXIT_INTERRUPTED, EXIT_PREEMPTED, PreemptedBeforeStart

PREEMPT_SIGNALS = ("SIGTERM", "SIGUSR1")
DUPLICATE_WINDOW_S = 1.0


class Preemption:
    """The signal state of one training process."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.first_at: float | None = None
        self.agreed = False  # every rank has seen a stop request (after agree())
        self.training = False  # before the trainer's loop, a preemption exits at once

    @property
    def requested(self) -> bool:
        return self.signum is not None or self.agreed

    @property
    def preempted(self) -> bool:
        """Stopping because of SIGTERM/SIGUSR1 (or another rank's), not Ctrl-C."""
        return self.requested and self.signum != signal.SIGINT

    @property
    def status(self) -> str:
        return "preempted" if self.preempted else "interrupted"

    @property
    def exit_code(self) -> int:
        return EXIT_PREEMPTED if self.preempted else EXIT_INTERRUPTED

    def handle(self, signum: int, frame=None) -> None:
        now = time.monotonic()
        if not self.training and signum != signal.SIGINT:
            raise PreemptedBeforeStart(signal.Signals(signum).name)
        if self.signum is None:
            self.signum, self.first_at = signum, now
            from .dist import is_main

            if is_main():
                name = signal.Signals(signum).name
                sys.stderr.write(
                    f"\n{name}: finishing this step, then saving a checkpoint (send it again to exit at once)\n"
                )
            return
        if now - (self.first_at or now) < DUPLICATE_WINDOW_S:
            return  # the same signal delivered again by the launcher
        sys.stderr.write("second signal: exiting now; the previous checkpoint stays valid\n")
        sys.stderr.flush()
        os._exit(self.exit_code)

    def install(self) -> None:
        """Handle SIGINT, SIGTERM and SIGUSR1 from now on (main thread only)."""
        for name in ("SIGINT", *PREEMPT_SIGNALS):
            try:
                signal.signal(getattr(signal, name), self.handle)
            except (ValueError, AttributeError):  # not the main thread / no such signal
                pass

    def agree(self, device) -> bool:
        """True when any rank has been asked to stop; collective (call on every rank, every
        step). One process: just the local flag."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            import torch

            flag = torch.tensor([1 if self.signum is not None else 0], device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            if int(flag.item()) and self.signum is None:
                self.signum = signal.SIGTERM  # another rank was preempted
                self.first_at = time.monotonic()
            self.agreed = bool(int(flag.item()))
            return self.agreed
        return self.signum is not None
