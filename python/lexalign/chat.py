"""Conversations as people have them, in one shape: a list of `{"role", "content"}` messages.

- OpenAI rows: `role` / `content`;
- ShareGPT rows: `from` / `value`, with human → user, gpt → assistant, system, tool
  (and observation → tool, function_call → assistant, as some ShareGPT exports write them);
- Alpaca rows (`dataset.format: alpaca`): `instruction`, `input`, `output`, optional `system`.

A dataset keeps one shape: the first conversation decides, and a row of the other shape is a
config error naming it (exit 2), as is an unknown role or a message without text."""

from __future__ import annotations

from typing import Any

from .errors import ConfigError

ROLES = ("system", "user", "assistant", "tool")
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "tool": "tool",
    "observation": "tool",
    "function_call": "assistant",
}
OPENAI, SHAREGPT = "role/content", "from/value (ShareGPT)"


def _keys(message: Any) -> set[str]:
    """The keys a message really has (the datasets loader fills absent ones with None)."""
    if not isinstance(message, dict):
        return set()
    return {k for k, v in message.items() if v is not None}


def shape_of(messages: Any) -> str | None:
    """OPENAI, SHAREGPT, or None for an empty conversation."""
    if not isinstance(messages, list) or not messages:
        return None
    keys = _keys(messages[0])
    return SHAREGPT if "from" in keys or "value" in keys else OPENAI


def normalize(messages: Any, row: int, shape: str | None, where: str) -> list[dict[str, str]]:
    """The conversation as role/content messages; `shape` is the dataset's (first row's)."""
    if messages is None:
        return []
    if not isinstance(messages, list):
        raise ConfigError(
            f"{where}: row {row}: the messages field holds {type(messages).__name__}, not a list of messages"
        )
    out = []
    for i, m in enumerate(messages):
        keys = _keys(m)
        if not keys:
            raise ConfigError(f"{where}: row {row}: message {i} is not an object with text")
        mine = SHAREGPT if keys & {"from", "value"} else OPENAI
        if keys & {"from", "value"} and keys & {"role", "content"}:
            raise ConfigError(
                f"{where}: row {row}: message {i} mixes role/content and from/value keys; use one shape"
            )
        if shape is not None and mine != shape:
            raise ConfigError(
                f"{where}: row {row}: its messages use {mine} but the dataset's first conversation uses {shape}; "
                "keep one shape per dataset"
            )
        out.append(_message(m, mine, row, i, where))
    return out


def _message(m: dict, shape: str, row: int, i: int, where: str) -> dict[str, str]:
    if shape == SHAREGPT:
        raw_role, content = m.get("from"), m.get("value")
        role = SHAREGPT_ROLES.get(str(raw_role).strip().lower()) if raw_role is not None else None
        known = "human, gpt, system, tool (ShareGPT)"
    else:
        raw_role, content = m.get("role"), m.get("content")
        role = str(raw_role).strip().lower() if raw_role is not None else None
        role = role if role in ROLES else None
        known = ", ".join(ROLES)
    if role is None:
        raise ConfigError(
            f"{where}: row {row}: message {i} has role {raw_role!r}; known roles: {known}"
        )
    if not isinstance(content, str):
        raise ConfigError(
            f"{where}: row {row}: message {i} ({role}) has no text content ({type(content).__name__}); "
            "give each message a string"
        )
    return {"role": role, "content": content}


def from_alpaca(row: dict, index: int, where: str) -> list[dict[str, str]]:
    """An Alpaca row as a conversation: system (if any), user = instruction (+ "\\n\\n" +
    input when input is not empty), assistant = output."""
    instruction, extra, output = row.get("instruction"), row.get("input"), row.get("output")
    for key, value in (("instruction", instruction), ("output", output)):
        if not isinstance(value, str):
            raise ConfigError(
                f"{where}: row {index}: alpaca field {key!r} is {type(value).__name__}, not text"
            )
    assert isinstance(instruction, str) and isinstance(output, str)
    user = instruction + ("\n\n" + extra if isinstance(extra, str) and extra.strip() else "")
    messages = []
    system = row.get("system")
    if isinstance(system, str) and system.strip():
        messages.append({"role": "system", "content": system})
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
    return messages
