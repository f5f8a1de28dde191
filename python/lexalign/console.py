"""Console output: human (rich, on stderr), quiet, or JSON events (one object per line, stdout)."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

from .errors import redact, redact_tree

_WRITE = threading.Lock()  # download workers print from several threads


class Console:
    """One place for everything a command prints. `mode` is "human", "quiet" or "json"."""

    def __init__(self, mode: str = "human") -> None:
        from .kinds import ConsoleMode

        self.mode = ConsoleMode(mode)  # an unknown mode is a ValueError here, not a silent default
        self._rich = None

    @property
    def human(self) -> bool:
        return self.mode == "human"

    @property
    def rich(self):
        """A rich console on stderr (imported lazily)."""
        if self._rich is None:
            from rich.console import Console as RichConsole

            self._rich = RichConsole(stderr=True, highlight=False, soft_wrap=True)
        return self._rich

    def event(self, name: str, **fields: Any) -> None:
        """A machine-readable event (printed only in JSON mode)."""
        if self.mode == "json":
            record = {"event": name, "time": round(time.time(), 3), **fields}
            line = json.dumps(redact_tree(record), default=str, sort_keys=False)
            with _WRITE:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()

    def info(self, message: str) -> None:
        if self.human:
            self.rich.print(redact(message), markup=False)

    def note(self, message: str) -> None:
        """Like info, with rich markup allowed."""
        if self.human:
            self.rich.print(message)

    def warn(self, message: str) -> None:
        if self.mode == "json":
            self.event("warning", message=redact(message))
        else:
            with _WRITE:
                sys.stderr.write(f"warning: {redact(message)}\n")

    def error(self, message: str, **fields: Any) -> None:
        """Errors are always printed on stderr; in JSON mode also as an event."""
        msg = redact(message)
        self.event("error", message=msg, **fields)
        with _WRITE:
            sys.stderr.write(f"error: {msg}\n")
            sys.stderr.flush()

    def table(self, title: str, columns: list[str], rows: list[list[Any]]) -> None:
        """A table on stdout (human mode) — the result people read or paste."""
        if not self.human:
            return
        from rich.console import Console as RichConsole
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for c in columns:
            table.add_column(c, overflow="fold")
        for r in rows:
            table.add_row(*[redact(str(x)) for x in r])
        RichConsole(highlight=False, soft_wrap=False, width=max(100, RichConsole().width)).print(
            table
        )


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
