"""The options several commands share (click only: `--help` stays instant): output modes and
`--debug`, `--config`/`--dry-run`, `--token-file`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _Run:
    """What `main` needs to know about the command that ran (set by its `--debug` option)."""

    debug = False


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    _Run.debug = value
    return value


def _output_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--json / --quiet / --debug: every command has them."""
    f = click.option(
        "--debug",
        is_flag=True,
        is_eager=True,
        expose_value=False,
        callback=_set_debug,
        help="Show a Python traceback for unexpected errors.",
    )(f)
    f = click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print one JSON event per line on stdout (for CI and scripts).",
    )(f)
    f = click.option("-q", "--quiet", is_flag=True, help="Print only errors and the final result.")(
        f
    )
    return f


def _token_file(f: Callable[..., Any]) -> Callable[..., Any]:
    """--token-file: every command that can load a gated model or dataset from the Hub."""
    return click.option(
        "--token-file",
        type=click.Path(exists=True, dir_okay=False, path_type=str),
        metavar="FILE",
        help="Read the Hub token from FILE instead of $HF_TOKEN (never printed).",
    )(f)


def _use_token_file(token_file: str | None) -> None:
    """Make the token of --token-file the one huggingface_hub uses in this process."""
    if token_file:
        import os

        from .commands import read_token

        os.environ["HF_TOKEN"] = read_token(token_file) or ""


def _common(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options of the config-driven commands (download, finetune, align)."""
    f = _output_options(f)
    f = click.option("--dry-run", is_flag=True, help="Validate and show the plan; write nothing.")(
        f
    )
    f = click.option(
        "-c",
        "--config",
        "config_path",
        required=True,
        type=click.Path(dir_okay=False, path_type=str),
        metavar="FILE",
        help="YAML config (see config/).",
    )(f)
    return f


def console(quiet: bool, as_json: bool):
    from .console import Console

    return Console("json" if as_json else "quiet" if quiet else "human")
