"""Shims over the pinned transformers/peft: what each works around, and why.

- `cpu_resume_fix`: transformers loads the optimizer onto `args.device` when world_size > 1;
  on CPU that is `cpu:0`, which torch cannot restore storages to. Map it to plain `cpu`.
- `pretokenized_dpo`: trl's DPOTrainer always re-tokenizes its dataset (and trains every token
  its chat rendering puts after the prompt); our pairs (pairs.py) come tokenized, with exactly
  the answer's content and end-of-turn token as the completion, so they are used as they are.
- `keep_epoch_on_resume`: accelerate's `skip_first_batches` (how the Trainer resumes in the
  middle of an epoch) builds a new DataLoaderShard whose epoch counter starts at 0 and resets
  the seedable sampler to epoch 0: a run resumed after its first epoch trains the rest of that
  epoch on epoch 0's order. The skipping loader keeps the epoch it was given.
- `keep_bitsandbytes_out`: peft imports bitsandbytes whenever it is installed; without QLoRA it
  is not needed and its import is slow and noisy, so it is kept out of sys.modules.
"""

from __future__ import annotations

import sys


def keep_bitsandbytes_out(quantization: str) -> None:
    if quantization == "none" and "bitsandbytes" not in sys.modules:
        sys.modules["bitsandbytes"] = None  # type: ignore[assignment]


def cpu_resume_fix(trainer_cls):
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


def pretokenized_dpo(trainer_cls):
    """A DPOTrainer that takes a dataset already holding prompt/chosen/rejected input ids."""

    class Pretokenized(trainer_cls):  # type: ignore[misc, valid-type]
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            if "prompt_input_ids" in dataset.column_names:
                return dataset
            return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

    Pretokenized.__name__ = trainer_cls.__name__
    return Pretokenized


def keep_epoch_on_resume() -> None:
    """Make transformers' Trainer skip into a resumed epoch with that epoch's data order."""
    import transformers.trainer as trainer_module

    skip = trainer_module.skip_first_batches
    if getattr(skip, "keeps_epoch", False):
        return

    def skip_keeping_epoch(dataloader, num_batches=0):
        skipped = skip(dataloader, num_batches)
        epoch = getattr(dataloader, "iteration", None)
        if epoch is not None and hasattr(skipped, "iteration"):
            skipped.iteration = epoch
        return skipped

    skip_keeping_epoch.keeps_epoch = True  # type: ignore[attr-defined]
    trainer_module.skip_first_batches = skip_keeping_epoch
