"""Test hooks, switched on by one environment variable and never otherwise.

`LEXALIGN_TESTING` holds a JSON object; production code asks `hook(name)` and gets None unless
a test set it. Known hooks:

- `step_delay_s` (float): sleep after each training step, so a test can interrupt a run mid-way;
- `rank_report` (folder): each training rank writes `rank-N.json` with the world size and a
  digest of its first batches (proves data parallelism split the data; the multi-node tests
  read it from inside torchrun);
- `machine` (str): what `platform.machine()` reports to the platform checks (so the arm64
  refusals are tested on x86 too; the arm64 CI leg checks them for real);
- `save_delay_s` (float): sleep inside each checkpoint save, before it is marked complete, so a
  test can send a second signal during a save;
- `signal_before_train` (str, a signal name): the process sends itself that signal once the run
  is planned and before the first step (a preemption while the weights load);
- `environment_on_node` ({"node": N, field: value…}): node N reports other environment fields
  (proves that nodes in different environments refuse to train together).
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any

ENV = "LEXALIGN_TESTING"
KNOWN = {
    "step_delay_s",
    "rank_report",
    "machine",
    "environment_on_node",
    "save_delay_s",
    "signal_before_train",
}


@cache
def _hooks() -> dict[str, Any]:
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise SystemExit(f"{ENV} is not a JSON object: {exc}") from None
    unknown = set(data) - KNOWN if isinstance(data, dict) else {"(not an object)"}
    if unknown:
        raise SystemExit(f"{ENV}: unknown hooks {sorted(unknown)}; known: {sorted(KNOWN)}")
    return data


def hook(name: str) -> Any:
    """The value of a test hook, or None (always None outside tests)."""
    return _hooks().get(name)


def env(**hooks: Any) -> dict[str, str]:
    """The environment entry a test passes to a subprocess to switch hooks on."""
    return {ENV: json.dumps(hooks)}


def machine() -> str:
    """platform.machine(), unless the `machine` hook says otherwise."""
    import platform

    return str(hook("machine") or platform.machine())
