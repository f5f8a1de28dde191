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
