"""Errors that end a command with a clear one-line message and a defined exit code.

Exit codes (docs/cli.md): 0 ok, 1 runtime failure, 2 usage or config error, 75 preempted (training
stopped by SIGTERM/SIGUSR1 after saving a checkpoint; run again to resume), 130 interrupted.
"""

from __future__ import annotations

import os
import re

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped on SIGTERM/SIGUSR1 with a checkpoint; run again
EXIT_INTERRUPTED = 130

_TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{6,}")


class LexAlignError(Exception):
    """A failure the user can act on; the message is one line and says what to do."""

    exit_code = EXIT_FAILURE


class ConfigError(LexAlignError):
    """Bad configuration or usage (exit 2)."""

    exit_code = EXIT_USAGE


class RuntimeFailure(LexAlignError):
    """The command ran but failed (exit 1)."""

    exit_code = EXIT_FAILURE


class PreemptedBeforeStart(BaseException):
    """SIGTERM/SIGUSR1 before the first training step: nothing to save, exit 75 at once.
    (A BaseException, so no `except Exception` on the way swallows it.)"""

    exit_code = EXIT_PREEMPTED


_SECRETS: set[str] = set()
# Variables whose values are secrets: the Hub token and the trackers' credentials.
SECRET_ENV = ("HF_TOKEN", "WANDB_API_KEY", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD")
_USERINFO_RE = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


def register_secret(value: str | None) -> None:
    """Remember a secret (a token from a file, a URL password) so every later line is redacted
    of it — human output, `--json` events and `--debug` tracebacks alike."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str, *secrets: str | None) -> str:
    """Remove secrets: the registered ones, the given ones, those of SECRET_ENV, anything shaped like a
    Hub token (`hf_…`), and the user:password part of URLs."""
    out = str(text)
    env_secrets = {os.environ.get(name, "").strip() for name in SECRET_ENV}
    for secret in sorted({*secrets, *env_secrets, *_SECRETS} - {None, ""}, key=len, reverse=True):
        if secret and len(secret) >= 4:
            out = out.replace(secret, "***")
    out = _USERINFO_RE.sub(lambda m: f"{m['scheme']}***@", out)
    return _TOKEN_RE.sub("hf_***", out)


def redact_tree(value):
    """redact() applied to every string in a JSON-like value, before it is serialised (so a
    secret with a quote or backslash in it cannot escape through JSON escaping)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): redact_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_tree(v) for v in value]
    return value


def one_line(text: str, limit: int = 400) -> str:
    """Collapse a (possibly multi-line) message into one line."""
    line = " ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return line if len(line) <= limit else line[: limit - 1] + "…"
