"""Where this process stands in a distributed run (torchrun / accelerate set RANK and
WORLD_SIZE); only rank 0 writes outputs."""

from __future__ import annotations

import os


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (a no-op in one process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def close() -> None:
    """Leave the distributed run once training is over, before the interpreter shuts down
    (PyTorch's documented shutdown: destroy_process_group). Without it gloo's worker threads
    can still hold work whose tensors reference Python objects while the interpreter is torn
    down, and a rank that trained and saved aborts at exit (SIGABRT, "terminate called without
    an active exception": seen on a ZeRO-3 rank in CI). Every rank waits for the others first,
    so none leaves while another still expects it in a collective."""
    import sys

    if "torch" not in sys.modules:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        barrier()
        dist.destroy_process_group()
