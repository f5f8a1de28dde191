"""The run's overall deadline (`deadline_s`)."""

from __future__ import annotations

import time

from ..errors import RuntimeFailure


class DeadlineExceeded(RuntimeFailure):
    pass


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def check(self, what: str) -> float:
        """Seconds left; DeadlineExceeded when none are."""
        left = self.remaining()
        if left <= 0:
            raise DeadlineExceeded(
                f"deadline_s={self.seconds:g} exceeded while {what}; raise deadline_s or retry later"
            )
        return left
