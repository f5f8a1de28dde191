"""The finetune and align configs (finetune.py, align.py): data, LoRA, training, and the checks
across sections. The download config and the shared rules are in config.py, which also gives
these names (`from lexalign.config import FinetuneConfig`) without importing this module until
one is asked for: a download never builds the training models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .config import Strict


class EvalSource(Strict):
    """Held-out evaluation data, one source at a time: another file or folder (`eval_path`, same
    fields as `path`), another split of the same dataset (`eval_split`), or a seeded hold-out
    of the training rows (`eval_fraction`, in (0, 0.5])."""

    path: str
    split: str = "train"
    eval_path: str | None = None
    eval_split: str | None = None
    eval_fraction: float | None = None

    @field_validator("eval_path", "eval_split")
    @classmethod
    def _not_blank(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError(
                "is empty; remove the key, or give a file/folder (eval_path) or a split name"
            )
        return v

    @field_validator("eval_fraction")
    @classmethod
    def _fraction(cls, v: float | None) -> float | None:
        if v is not None and not (0 < v <= 0.5):
            raise ValueError(
                "must be in (0, 0.5]: the share of training rows held out for evaluation, e.g. 0.1"
            )
        return v

    @model_validator(mode="after")
    def _one_eval_source(self) -> EvalSource:
        chosen = [
            k for k in ("eval_path", "eval_split", "eval_fraction") if getattr(self, k) is not None
        ]
        if len(chosen) > 1:
            raise ValueError(
                f"set one evaluation source, not {' and '.join(chosen)}: eval_path, eval_split or eval_fraction"
            )
        if self.eval_split is not None and self.eval_split == self.split:
            raise ValueError(
                f"eval_split {self.eval_split!r} is the training split; name another split, or use eval_fraction"
            )
        return self

    @property
    def has_eval(self) -> bool:
        return any(v is not None for v in (self.eval_path, self.eval_split, self.eval_fraction))


DATA_FORMATS = ("text", "prompt_completion", "messages", "alpaca")


class SFTDataset(EvalSource):
    text_field: str | None = None
    prompt_field: str | None = None
    completion_field: str | None = None
    messages_field: str | None = None
    # what the rows are; set from the *_field keys when absent. `alpaca`: columns instruction,
    # input, output (and an optional system), trained as a conversation (chat.from_alpaca)
    format: Literal["text", "prompt_completion", "messages", "alpaca"] | None = None

    @model_validator(mode="after")
    def _one_format(self) -> SFTDataset:
        pc = (self.prompt_field is not None, self.completion_field is not None)
        if pc[0] != pc[1]:
            raise ValueError(
                "prompt_field and completion_field go together: set both, or use text_field"
            )
        given = [
            name
            for name, on in (
                ("text", self.text_field is not None),
                ("prompt_completion", all(pc)),
                ("messages", self.messages_field is not None),
            )
            if on
        ]
        if len(given) > 1:
            raise ValueError(
                "set exactly one format: text_field, or prompt_field + completion_field, or messages_field"
            )
        if self.format == "alpaca":
            if given:
                raise ValueError(
                    "format: alpaca reads the columns instruction, input, output (and system); "
                    f"remove {given[0].replace('prompt_completion', 'prompt_field')}_field"
                )
            return self
        if self.format is not None and given and given[0] != self.format:
            raise ValueError(f"format: {self.format} does not match the *_field keys given")
        self.format = self.format or (given[0] if given else "text")
        if self.format == "text" and self.text_field is None:
            self.text_field = "text"
        if self.format == "messages" and self.messages_field is None:
            self.messages_field = "messages"
        if self.format == "prompt_completion" and not all(pc):
            self.prompt_field, self.completion_field = "prompt", "completion"
        return self

    @property
    def conversational(self) -> bool:
        return self.format in ("messages", "alpaca")


class PreferenceDataset(EvalSource):
    prompt_field: str = "prompt"
    chosen_field: str = "chosen"
    rejected_field: str = "rejected"


class Lora(Strict):
    r: int = Field(8, ge=1, le=4096)
    alpha: float = Field(16, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: Literal["auto", "all-linear"] | list[str] = "auto"

    @field_validator("target_modules")
    @classmethod
    def _modules(cls, v: Any) -> Any:
        if isinstance(v, list) and not v:
            raise ValueError("is empty; use auto, or list module names such as [q_proj, v_proj]")
        return v


class Training(Strict):
    max_steps: int = Field(100, ge=1)
    learning_rate: float = Field(2.0e-4, gt=0, lt=1)
    batch_size: int = Field(4, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_length: int = Field(512, ge=8)
    seed: int = 42
    logging_steps: int = Field(10, ge=1)
    save_steps: int = Field(50, ge=1)
    warmup_steps: int = Field(0, ge=0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    gradient_checkpointing: bool = False
    save_total_limit: int | None = Field(None, ge=1)
    eval_steps: int | None = Field(None, ge=1, description="default: save_steps")
    # trackers (tracking/): a list of tensorboard, mlflow, wandb; the scalars none and
    # tensorboard still work. LexAlign's own files are always written.
    report_to: list[Literal["tensorboard", "mlflow", "wandb"]] = []
    packing: bool = False
    # what the loss is computed on (rows.py): auto = assistant for chat data (messages,
    # alpaca), completion for prompt + completion, all for text
    loss_on: Literal["auto", "assistant", "completion", "all"] = "auto"
    # sharding.py: none = every rank holds the model (DDP); zero2/zero3 = DeepSpeed ZeRO;
    # fsdp = PyTorch FSDP (CUDA only). offload: ZeRO's CPU offload. deepspeed: a user's own
    # DeepSpeed JSON instead of sharding/offload.
    sharding: Literal["none", "zero2", "zero3", "fsdp"] = "none"
    offload: Literal["none", "optimizer", "parameters"] = "none"
    deepspeed: str | None = None

    @field_validator("report_to", mode="before")
    @classmethod
    def _trackers(cls, v: Any) -> list[str]:
        from .tracking import normalise

        return normalise(v)  # an unknown name: one line listing the known ones (ValueError)

    @field_validator("deepspeed")
    @classmethod
    def _deepspeed_json(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from .train.sharding import check_user_json

        check_user_json(v)  # one line naming the key and the fix (ValueError)
        return v

    @model_validator(mode="after")
    def _sharding_fits(self) -> Training:
        from .train.sharding import check_keys

        check_keys(self.sharding, self.offload, self.deepspeed)
        return self


class TrainConfigBase(Strict):
    model: str
    output_dir: str
    lora: Lora = Field(default_factory=Lora)
    training: Training = Field(default_factory=Training)
    quantization: Literal["none", "4bit", "8bit"] = "none"
    resume: str = "auto"

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        if not v.strip():
            raise ValueError(
                "is empty; give a local model folder (e.g. models/distilgpt2) or a Hub repo id"
            )
        return v

    @field_validator("resume")
    @classmethod
    def _resume(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("is empty; use auto, never, or the path of a checkpoint-N folder")
        from .kinds import ResumeMode

        ResumeMode.parse(v)  # validated here, where it enters
        return v.strip()

    @property
    def resume_mode(self):
        """The typed `resume:` (validated when the config loaded)."""
        from .kinds import ResumeMode

        return ResumeMode.parse(self.resume)


LOSS_FITS = {  # data format -> the loss_on values it can have
    "text": ("auto", "all"),
    "prompt_completion": ("auto", "completion", "all"),
    "messages": ("auto", "assistant", "all"),
    "alpaca": ("auto", "assistant", "all"),
}


class FinetuneConfig(TrainConfigBase):
    output_dir: str = "outputs/sft"
    dataset: SFTDataset

    @model_validator(mode="after")
    def _loss_fits(self) -> FinetuneConfig:
        fmt, loss_on = self.dataset.format or "text", self.training.loss_on
        if loss_on not in LOSS_FITS[fmt]:
            raise ValueError(
                f"training.loss_on: {loss_on} does not fit {fmt} data (dataset.format); "
                f"use {' or '.join(LOSS_FITS[fmt])}"
            )
        return self


class AlignConfig(TrainConfigBase):
    output_dir: str = "outputs/dpo"
    method: Literal["dpo"] = "dpo"
    beta: float = Field(0.1, gt=0)
    adapter: str | None = None
    dataset: PreferenceDataset

    @model_validator(mode="after")
    def _no_packing(self) -> AlignConfig:
        if self.training.packing:
            raise ValueError(
                "training.packing is for finetune (SFT) only; DPO keeps chosen and rejected apart. Remove it"
            )
        if self.training.loss_on not in ("auto", "assistant"):
            raise ValueError(
                f"training.loss_on: {self.training.loss_on} is for finetune; DPO trains on the chosen "
                "and rejected answers (and their end-of-turn token). Remove it or use auto"
            )
        return self
