"""Enumerations shared by the commands: what is trained, and how a repo download ended."""

from __future__ import annotations

from enum import StrEnum


class TrainKind(StrEnum):
    """The training commands; the value is the CLI command's name."""

    FINETUNE = "finetune"
    ALIGN = "align"

    @property
    def method(self) -> str:
        """The trl method behind it."""
        return "sft" if self is TrainKind.FINETUNE else "dpo"


class RepoStatus(StrEnum):
    """How one repo of a download run ended (the value is what the summary prints)."""

    PENDING = "pending"
    OK = "ok"
    OK_OFFLINE = "ok (offline)"
    DRY_RUN = "dry-run"
    DRY_RUN_OFFLINE = "dry-run (offline)"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def succeeded(self) -> bool:
        return self in (
            RepoStatus.OK,
            RepoStatus.OK_OFFLINE,
            RepoStatus.DRY_RUN,
            RepoStatus.DRY_RUN_OFFLINE,
        )


class ResumeMode(StrEnum):
    """`resume:` in a training config: continue from the newest complete checkpoint, never
    continue (refuse a non-empty output_dir unless --overwrite), or continue from one folder."""

    AUTO = "auto"
    NEVER = "never"
    CHECKPOINT = "checkpoint"

    @classmethod
    def parse(cls, value: str) -> ResumeMode:
        """The mode of a `resume:` value; raises ValueError with the fix for anything else."""
        import re
        from pathlib import PurePath

        v = value.strip()
        if v in (cls.AUTO, cls.NEVER):
            return cls(v)
        if v and re.fullmatch(r"checkpoint-\d+", PurePath(v).name):
            return cls.CHECKPOINT
        raise ValueError(
            f"{value!r} is not auto, never, or the path of a checkpoint-N folder; use one of those"
        )


class ConsoleMode(StrEnum):
    """How a command prints: rich lines on stderr, errors and the result only, or JSON events."""

    HUMAN = "human"
    QUIET = "quiet"
    JSON = "json"
