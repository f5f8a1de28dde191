"""`python -m lexalign.launch` — torchrun with LexAlign's exit codes.

The arguments are torchrun's (`--nnodes`, `--nproc-per-node`, `--rdzv-*`, `--standalone`, …),
and the run is torchrun's own elastic agent. What differs is how a preempted run ends:

- torchrun's agent turns SIGTERM into a `SignalException`, stops its workers and exits 1 with a
  traceback, although every worker finished its step, saved a checkpoint and exited 75. Here,
  when the agent stops on a signal and every worker exited 75 (EXIT_PREEMPTED), the launcher
  exits 75 with one line; a scheduler's requeue logic and a Kubernetes pod-failure policy read
  the documented code.
- SIGUSR1 (SLURM's advance warning) stops the agent like SIGTERM and is passed on to the
  workers (torchrun's agent would die of it, leaving its workers behind).
- Workers that exit 75 on their own (a signal delivered to them directly) are a preemption too,
  not a failed run: exit 75, without the ChildFailedError report.
- The workers get `LEXALIGN_STOP_GRACE_S` (default 300) seconds between the signal and SIGKILL
  to finish the step and write the checkpoint (torchrun gives 30).
"""

from __future__ import annotations

import os
import signal
import sys

from .errors import EXIT_PREEMPTED

GRACE_ENV = "LEXALIGN_STOP_GRACE_S"
DEFAULT_GRACE_S = 300

_exit_codes: list[int | None] = []


def _grace_s() -> int:
    try:
        return max(1, int(os.environ.get(GRACE_ENV, DEFAULT_GRACE_S)))
    except ValueError:
        return DEFAULT_GRACE_S


def _agent_class():
    """torchrun's LocalElasticAgent that remembers its workers' exit codes when it shuts them
    down, and gives them the grace period to save."""
    from torch.distributed.elastic.agent.server.local_elastic_agent import LocalElasticAgent

    class Agent(LocalElasticAgent):
        def _shutdown(self, death_sig=signal.SIGTERM, is_restart=False) -> None:
            pcontext = getattr(self, "_pcontext", None)
            if pcontext is not None and not is_restart:
                close = pcontext.close
                pcontext.close = lambda sig=death_sig, timeout=30: close(sig, _grace_s())
            super()._shutdown(death_sig, is_restart)
            handlers = getattr(pcontext, "subprocess_handlers", None) or {}
            if not is_restart:
                _exit_codes[:] = [h.proc.returncode for h in handlers.values()]

    return Agent


def _all_preempted(codes) -> bool:
    codes = list(codes)
    return bool(codes) and all(c == EXIT_PREEMPTED for c in codes)


def main(argv: list[str] | None = None) -> int:
    import torch.distributed.launcher.api as launcher_api
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import (
        SignalException,
        _terminate_process_handler,
    )
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    args = torchrun.parse_args(sys.argv[1:] if argv is None else argv)
    launcher_api.LocalElasticAgent = _agent_class()
    signal.signal(signal.SIGUSR1, _terminate_process_handler)
    try:
        torchrun.run(args)
    except SignalException as exc:
        name = signal.Signals(exc.sigval).name
        if _all_preempted(_exit_codes):
            sys.stderr.write(
                f"lexalign.launch: {name}: every worker saved a checkpoint and exited "
                f"{EXIT_PREEMPTED}; run the same command again to resume\n"
            )
            return EXIT_PREEMPTED
        sys.stderr.write(f"lexalign.launch: stopped by {name}; worker exit codes {_exit_codes}\n")
        return 128 + int(exc.sigval)
    except ChildFailedError as exc:
        codes = [f.exitcode for f in exc.failures.values()]
        if _all_preempted(codes):
            sys.stderr.write(
                f"lexalign.launch: every worker saved a checkpoint and exited {EXIT_PREEMPTED}; "
                "run the same command again to resume\n"
            )
            return EXIT_PREEMPTED
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
