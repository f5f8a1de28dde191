"""The retry policy in one table: which failures are transient (retried with backoff, honouring
Retry-After) and which are final, each final one with the message the user sees.

huggingface_hub retries some file requests on its own (up to 5 times, 1-8 s apart), but not the
API call, not mid-body drops and not 429. So that `retries`, `timeout_s` and `deadline_s` are the
one policy a user configures, its own retries are switched off (`single_attempt`) and every
request goes through the run's `Retrier`, which owns the loop: the attempts, the deadline, the
stop event (Ctrl-C), the console lines and events, and the random source of the backoff.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..console import Console
from ..errors import LexAlignError, RuntimeFailure, one_line, redact
from .deadline import Deadline, DeadlineExceeded
from .network import explain
from .transfer import Cancelled, PlanChange

BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0


@dataclass(frozen=True)
class Where:
    """What a request was for (for messages)."""

    repo_id: str
    repo_type: str
    revision: str
    have_token: bool

    @property
    def kind(self) -> str:
        return "dataset" if self.repo_type == "dataset" else "model"

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{'datasets/' if self.repo_type == 'dataset' else ''}{self.repo_id}"


@dataclass(frozen=True)
class Verdict:
    transient: bool
    message: str = ""
    retry_after: float | None = None
    cause: BaseException | None = None


def chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what caused it, skipping huggingface_hub's "not in the local cache"
    wrapper around the real cause (a connection error, a 5xx on HEAD …)."""
    from huggingface_hub import errors as hf_errors

    seen = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        wrapped = isinstance(e, hf_errors.LocalEntryNotFoundError) and (
            e.__cause__ or e.__context__
        )
        if not wrapped:
            yield e
        e = e.__cause__ or e.__context__


def retry_after(response: Any) -> float | None:
    try:
        value = response.headers.get("Retry-After")
    except AttributeError:
        return None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _gated(e: BaseException, w: Where, status: int | None) -> str:
    if status == 401 or not w.have_token:
        return (
            f"{w.kind} repo {w.repo_id} is gated and no token was sent: set HF_TOKEN (or --token-file) "
            "to a token of an account that accepted its licence"
        )
    return (
        f"{w.kind} repo {w.repo_id} is gated and your token has no access: accept the licence at "
        f"{w.url} with the token's account"
    )


def _final_table() -> list[
    tuple[type[BaseException], Callable[[BaseException, Where, int | None], str]]
]:
    """Final failures by exception type, most specific first (GatedRepoError is a
    RepositoryNotFoundError)."""
    from huggingface_hub import errors as e

    return [
        (e.GatedRepoError, _gated),
        (
            e.RevisionNotFoundError,
            lambda x, w, s: (
                f"revision {w.revision!r} not found in {w.kind} repo {w.repo_id}: use an existing branch, tag or commit"
            ),
        ),
        (
            e.EntryNotFoundError,
            lambda x, w, s: (
                f"a file listed by {w.kind} repo {w.repo_id}@{w.revision} is missing on the server: {one_line(x, 200)}"
            ),
        ),
        (
            e.RepositoryNotFoundError,
            lambda x, w, s: (
                f"{w.kind} repo {w.repo_id} not found: check repo_id and that it is a {w.kind}"
                + ("" if w.have_token else " (if it is private, set HF_TOKEN)")
            ),
        ),
        (e.DisabledRepoError, lambda x, w, s: f"{w.kind} repo {w.repo_id} is disabled on the Hub"),
        (
            e.OfflineModeIsEnabled,
            lambda x, w, s: (
                f"{w.repo_id}: HF_HUB_OFFLINE is set and no complete local copy exists; run once online"
            ),
        ),
    ]


# HTTP statuses: (transient?, message for a final one).
STATUS_TABLE: dict[int, tuple[bool, str]] = {
    401: (False, "{repo}: the Hub rejected the token (401): check HF_TOKEN"),
    403: (
        False,
        "{repo}: the token has no permission for this repo (403): use a token with read access",
    ),
    429: (True, ""),
}

# Transient by type: connection drops, timeouts, broken bodies (requests, urllib3, the stdlib).
TRANSIENT_NAMES = {
    "ConnectionError",
    "Timeout",
    "ReadTimeout",
    "ConnectTimeout",
    "ChunkedEncodingError",
    "ContentDecodingError",
    "ProtocolError",
    "ReadTimeoutError",
    "IncompleteRead",
    "NewConnectionError",
    "MaxRetryError",
    "TimeoutError",
    "ConnectionResetError",
    "ConnectionAbortedError",
    "ConnectionRefusedError",
    "BrokenPipeError",
}


def decide(exc: BaseException, where: Where) -> Verdict:
    """Transient (retry) or final (with its one-line message) — the whole policy."""
    final = _final_table()
    for e in chain(exc):
        for cls, message in final:
            if isinstance(e, cls):
                status = getattr(getattr(e, "response", None), "status_code", None)
                return Verdict(False, message(e, where, status), cause=e)
        response = getattr(e, "response", None)
        status = getattr(response, "status_code", None)
        if status is not None and hasattr(e, "response"):
            transient, template = STATUS_TABLE.get(status, (status >= 500, ""))
            if transient:
                return Verdict(True, retry_after=retry_after(response), cause=e)
            text = template.format(repo=where.repo_id) if template else ""
            return Verdict(
                False, text or f"{where.repo_id}: HTTP {status}: {one_line(e, 200)}", cause=e
            )
        if any(c.__name__ in TRANSIENT_NAMES for c in type(e).__mro__):
            return Verdict(True, cause=e)
        if isinstance(e, OSError) and "Consistency check failed" in str(e):
            return Verdict(True, cause=e)
    return Verdict(False, f"{where.repo_id}: {type(exc).__name__}: {one_line(exc, 300)}", cause=exc)


def backoff_delay(attempt: int, after: float | None, rng: random.Random) -> float:
    """Exponential backoff with full jitter, or the server's Retry-After when it gives one."""
    if after is not None:
        return min(after, BACKOFF_MAX_S * 4)
    cap = min(BACKOFF_MAX_S, BACKOFF_BASE_S * (2**attempt))
    return cap / 2 + rng.uniform(0, cap / 2)


def single_attempt() -> None:
    """Make huggingface_hub's file requests single attempts: our retry loop owns the policy."""
    import functools

    from huggingface_hub import file_download

    current = getattr(file_download, "http_backoff", None)
    if current is None or getattr(current, "_lexalign", False):
        return
    wrapped = functools.partial(current, max_retries=0)
    wrapped._lexalign = True  # type: ignore[attr-defined]
    file_download.http_backoff = wrapped


def local_oserror(exc: BaseException) -> bool:
    """An OSError about a local file (permissions, disk full, a dangling link), not a request."""
    if not isinstance(exc, OSError) or exc.errno is None:
        return False
    try:
        from requests import RequestException
    except ImportError:  # pragma: no cover
        return True
    return not isinstance(exc, RequestException) and exc.filename is not None


class Retrier:
    """The run's retry loop: `retrier(what, fn, where)` calls `fn(timeout)` until it succeeds,
    a failure is final (the policy table), the attempts are spent or the deadline would pass;
    Ctrl-C (the stop event) ends it at once."""

    def __init__(
        self,
        retries: int,
        timeout_s: float,
        deadline: Deadline,
        stop: threading.Event,
        console: Console,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.attempts = retries + 1
        self.timeout_s = timeout_s
        self.deadline = deadline
        self.stop = stop
        self.console = console
        self.rng = rng or random.Random()
        self.sleep = sleep

    def __call__(self, what: str, fn: Callable[[float], Any], where: Where) -> Any:
        for attempt in range(self.attempts):
            if self.stop.is_set():
                raise Cancelled(what)
            left = self.deadline.check(what)
            timeout = max(1.0, min(self.timeout_s, left))
            try:
                return fn(timeout)
            except (KeyboardInterrupt, LexAlignError, Cancelled, PlanChange):
                raise
            except Exception as exc:  # noqa: BLE001 - decided by the policy table
                delay = self._after_failure(what, exc, where, attempt)
                self._wait(delay)
        raise AssertionError("unreachable")

    def _after_failure(self, what: str, exc: Exception, where: Where, attempt: int) -> float:
        """Raise when the failure is final or the budget is spent; else say so and return
        how long to wait before the next attempt."""
        if self.stop.is_set():
            raise Cancelled(what) from exc
        if local_oserror(exc):
            raise exc  # the disk, not the network: the repo fails with a fix hint
        verdict = decide(exc, where)
        if not verdict.transient:
            raise RuntimeFailure(verdict.message) from exc
        cause = verdict.cause or exc
        if attempt == self.attempts - 1:
            raise RuntimeFailure(
                f"{what}: gave up after {self.attempts} attempt(s): {explain(cause)}"
            ) from exc
        delay = backoff_delay(attempt, verdict.retry_after, self.rng)
        if delay >= self.deadline.remaining():
            raise DeadlineExceeded(
                f"deadline_s={self.deadline.seconds:g} would be exceeded while {what} "
                f"(next retry in {delay:.1f}s); raise deadline_s or retry later"
            ) from exc
        self.console.warn(
            f"{what}: {explain(cause)}; retry {attempt + 1}/{self.attempts - 1} in {delay:.1f}s"
        )
        self.console.event(
            "retry",
            what=what,
            attempt=attempt + 1,
            delay_s=round(delay, 2),
            error=redact(explain(cause)),
        )
        return delay

    def _wait(self, seconds: float) -> None:
        """Back off, but wake up at once on Ctrl-C."""
        if self.sleep is time.sleep:
            if self.stop.wait(seconds):
                raise Cancelled("interrupted")
        else:
            self.sleep(seconds)
