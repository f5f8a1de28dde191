"""The Hub token, one path for every command: `--token-file` (every CLI that can load from the
Hub has it) or `HF_TOKEN`. The option's callback (options.token_file_option) calls `use` once,
before the command runs: the token is read, registered as a secret (with every other line of
the file and any password in HF_ENDPOINT or a proxy URL), so that no printed line ever contains
it, and put in this process's `HF_TOKEN`, which huggingface_hub, transformers, datasets and
our own download client all read (download passes `current()` explicitly too)."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError


def use(token_file: str | None) -> str | None:
    """Read the token (file first, else HF_TOKEN), register the secrets, make it the process's
    HF_TOKEN; the token or None."""
    register_url_secrets()
    token = read(token_file)
    if token_file and token:
        os.environ["HF_TOKEN"] = token
    return token


def current() -> str | None:
    """The token `use` settled on (HF_TOKEN of this process)."""
    return os.environ.get("HF_TOKEN", "").strip() or None


def read(token_file: str | None) -> str | None:
    """The Hub token: the first line of --token-file (utf-8, a BOM allowed), else HF_TOKEN. The
    token is registered as a secret, so no printed line ever contains it."""
    from .errors import register_secret

    if token_file:
        p = Path(token_file)
        try:
            if not p.is_file():
                raise ConfigError(
                    f"--token-file {token_file}: not a regular file; give the file holding the token"
                )
            if p.stat().st_size > 64 * 1024:
                raise ConfigError(
                    f"--token-file {token_file}: larger than 64 kB, so not a token file"
                )
            text = p.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise ConfigError(f"--token-file {token_file}: not UTF-8 text") from None
        except OSError as exc:
            raise ConfigError(
                f"--token-file {token_file}: cannot read it ({exc.strerror})"
            ) from None
        for line in text.splitlines():
            register_secret(line.strip())  # every line is secret; only the first is used
        token = text.splitlines()[0].strip() if text.strip() else ""
        if not token:
            raise ConfigError(
                f"--token-file {token_file} has no token on its first line; put the token there"
            )
        return token
    token = os.environ.get("HF_TOKEN", "").strip()
    register_secret(token)
    return token or None


def register_url_secrets() -> None:
    """A password in HF_ENDPOINT (or a proxy URL) is a secret too."""
    from urllib.parse import urlsplit

    from .errors import register_secret

    for var in (
        "HF_ENDPOINT",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
    ):
        try:
            parts = urlsplit(os.environ.get(var, ""))
        except ValueError:
            continue
        register_secret(parts.password)
        if parts.password and parts.username:
            register_secret(f"{parts.username}:{parts.password}")
