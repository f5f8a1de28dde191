"""The options several commands share (click only: `--help` stays instant): output modes and
`--debug`, `--config`/`--dry-run`, `--token-file`. Public: cli.py builds its commands from
them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class RunState:
    """What `main` needs to know about the command that ran (set by its `--debug` option)."""

    debug = False


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    RunState.debug = value
    return value


def output_options(f: Callable[..., Any]) -> Callable[..., Any]:
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


def _use_token(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    from . import hubtoken

    hubtoken.use(value)


def token_file_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """--token-file: every command that can load a gated model or dataset from the Hub. The
    token (this file, else HF_TOKEN) is settled before the command runs (hubtoken.use)."""
    return click.option(
        "--token-file",
        type=click.Path(exists=True, dir_okay=False, path_type=str),
        metavar="FILE",
        expose_value=False,
        callback=_use_token,
        help="Read the Hub token from FILE instead of $HF_TOKEN (never printed).",
    )(f)


def config_option(help: str = "YAML config (see config/).") -> Callable[..., Any]:
    """-c/--config FILE."""
    return click.option(
        "-c",
        "--config",
        "config_path",
        required=True,
        type=click.Path(dir_okay=False, path_type=str),
        metavar="FILE",
        help=help,
    )


def config_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options of the config-driven commands (download, finetune, align)."""
    f = output_options(f)
    f = click.option("--dry-run", is_flag=True, help="Validate and show the plan; write nothing.")(
        f
    )
    return config_option()(f)


def console(quiet: bool, as_json: bool):
    from .console import Console

    return Console("json" if as_json else "quiet" if quiet else "human")
