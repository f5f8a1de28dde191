"""`lexalign download|finetune|align` (and the download.py / finetune.py / align.py shims).

Only click is imported here: `--help` stays instant and never imports torch. Each command
imports what it needs when it runs.

Exit codes: 0 ok, 1 runtime failure, 2 usage or config error, 130 interrupted.

Over 400 lines: every command's options and help text, which `--help` reads from this one
click module without importing anything else.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

import click

from .errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    LexAlignError,
    PreemptedBeforeStart,
)
from .kinds import TrainKind
from .options import (
    CONTEXT,
    RunState,
    config_option,
    config_options,
    output_options,
    token_file_option,
)
from .options import console as _console


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="lexalign", prog_name="lexalign")
def cli() -> None:
    """LexAlign: download models and datasets from the Hugging Face Hub, fine-tune them with
    LoRA (SFT) and align them with DPO — each driven by a YAML config — then export the merged
    model and generate with it."""


@cli.command(context_settings=CONTEXT)
@config_options
@click.option(
    "--verify",
    is_flag=True,
    help="Re-hash downloaded files against their manifests (offline); exit 1 on a mismatch.",
)
@token_file_option
def download(
    config_path: str,
    dry_run: bool,
    quiet: bool,
    as_json: bool,
    verify: bool,
) -> None:
    """Download the models and datasets listed in a YAML config (e.g. config/downloads.yaml).

    Retries transient failures with backoff, resumes partial files, checks every file and
    writes lexalign-manifest.json into each repo's folder. Respects HF_ENDPOINT, HF_HOME,
    HF_HUB_OFFLINE and HF_TOKEN.
    """
    from . import startup

    startup.hold()  # settled once the download modules are in (commands.run_download)
    startup.quick_exit()  # the process ends without the interpreter's teardown
    from .commands import run_download

    sys.exit(
        run_download(
            config_path,
            _console(quiet, as_json),
            dry_run=dry_run,
            verify=verify,
        )
    )


def _train_command(kind: TrainKind, doc: str) -> click.Command:
    """`finetune` and `align`: the same options, another config model."""

    @click.option(
        "--overwrite",
        is_flag=True,
        help="Start over: empty a non-empty output_dir first (whatever resume: says).",
    )
    @token_file_option
    @config_options
    def command(
        config_path: str,
        dry_run: bool,
        quiet: bool,
        as_json: bool,
        overwrite: bool,
    ) -> None:
        from .commands import run_train

        sys.exit(
            run_train(
                kind, config_path, _console(quiet, as_json), dry_run=dry_run, overwrite=overwrite
            )
        )

    command.__doc__ = doc
    return cli.command(name=str(kind), context_settings=CONTEXT)(command)


finetune = _train_command(
    TrainKind.FINETUNE,
    """Supervised fine-tuning with LoRA (peft + trl) from a YAML config (e.g. config/finetune.yaml).

    Writes the adapter, tokenizer, checkpoints, metrics.jsonl and run.json to output_dir.
    Runs unchanged under `accelerate launch` or `torchrun`.
    """,
)
align = _train_command(
    TrainKind.ALIGN,
    """Preference alignment with DPO (trl) from a YAML config (e.g. config/align.yaml).

    Optionally starts from a finetune output (adapter:), which then is the DPO reference.
    Writes the same outputs as finetune.
    """,
)


@cli.command(context_settings=CONTEXT)
@click.option(
    "--adapter",
    required=True,
    metavar="DIR",
    help="A finetune or align output_dir (adapter_config.json, run.json).",
)
@click.option("--output", required=True, metavar="DIR", help="Folder for the merged model.")
@click.option(
    "--base",
    metavar="PATH",
    help="The base model (default: the one the run trained on, from run.json).",
)
@click.option("--overwrite", is_flag=True, help="Start over: replace a non-empty --output folder.")
@click.option("--dry-run", is_flag=True, help="Check the inputs and show the plan; write nothing.")
@token_file_option
@click.option(
    "--max-shard-size",
    default="2GB",
    show_default=True,
    metavar="SIZE",
    help="Largest safetensors shard.",
)
@output_options
def export(
    adapter: str,
    output: str,
    base: str | None,
    overwrite: bool,
    dry_run: bool,
    max_shard_size: str,
    quiet: bool,
    as_json: bool,
) -> None:
    """Merge a LoRA adapter into its base model and write a standalone model folder.

    An align output's SFT adapter is merged too. The merge runs in fp32 (a QLoRA adapter merges
    into the unquantised base) and is saved in the base model's dtype as safetensors, with
    config, generation config, tokenizer and a model card. Load it with
    transformers.AutoModelForCausalLM.from_pretrained(DIR).
    """
    from .commands import run_export

    sys.exit(
        run_export(
            adapter,
            output,
            _console(quiet, as_json),
            base=base,
            overwrite=overwrite,
            max_shard_size=max_shard_size,
            dry_run=dry_run,
        )
    )


@cli.command(context_settings=CONTEXT)
@click.option("--model", metavar="DIR", help="A model folder (e.g. an export) or a Hub repo id.")
@click.option("--adapter", metavar="DIR", help="A finetune or align output_dir.")
@click.option(
    "--base", metavar="PATH", help="With --adapter: the base model (default: run.json's)."
)
@click.option("--prompt", required=True, metavar="TEXT", help="What to ask or continue.")
@click.option(
    "--max-new-tokens",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    metavar="N",
    help="Tokens to add (at least 1).",
)
@click.option(
    "--raw",
    is_flag=True,
    help="Send the prompt as is, not through the model's chat template.",
)
@click.option(
    "--temperature",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0.0),
    help="0: greedy; above 0: sample.",
)
@click.option(
    "--top-p",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.0, max=1.0, min_open=True),
    help="Nucleus sampling (with --temperature above 0).",
)
@click.option("--seed", type=int, help="Seed for sampling (a repeatable completion).")
@click.option("--dry-run", is_flag=True, help="Check the inputs and show the plan; load nothing.")
@token_file_option
@output_options
def generate(
    model: str | None,
    adapter: str | None,
    base: str | None,
    prompt: str,
    max_new_tokens: int,
    raw: bool,
    temperature: float,
    top_p: float,
    seed: int | None,
    dry_run: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Print a completion of --prompt by a model folder or a training output, token by token.

    A model with a chat template gets the prompt as a user turn through it (as it was trained);
    --raw sends the text as is. Greedy unless --temperature is above 0."""
    if (model is None) == (adapter is None):
        raise click.UsageError(
            "give exactly one of --model DIR (a model or an export) and --adapter DIR (a finetune/align output)"
        )
    if model is not None and base is not None:
        raise click.UsageError("--base goes with --adapter; a --model folder is a whole model")
    from .commands import run_generate

    sys.exit(
        run_generate(
            _console(quiet, as_json),
            model=model,
            adapter=adapter,
            base=base,
            prompt=prompt,
            max_new_tokens=max_new_tokens,
            raw=raw,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            dry_run=dry_run,
        )
    )


class _Rows(click.ParamType):
    """--rows: a count of at least 1, or `all`."""

    name = "N|all"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | None:
        if isinstance(value, int) or value is None:
            return value
        if str(value).strip().lower() == "all":
            return None
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            self.fail(f"{value!r} is not a number of rows; give N ≥ 1 or all", param, ctx)
        return n


@cli.command(context_settings=CONTEXT)
@config_option("A finetune or align config (see config/).")
@click.option(
    "--rows",
    "n_rows",
    default="3",
    show_default=True,
    type=_Rows(),
    help="How many rows to show (from the start of the dataset), or all.",
)
@click.option(
    "--kind",
    type=click.Choice(["finetune", "align"]),
    help="What the config is for (default: told from its keys).",
)
@token_file_option
@output_options
def preview(
    config_path: str,
    n_rows: int | None,
    kind: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Show the first training rows of a finetune or align config as the trainer gets them:
    the text with the tokens the loss is computed on highlighted, and counts (rows, rows
    dropped and why, tokens, trained tokens). Loads the tokenizer and the data, no weights.

    --json prints {"rows": [{"index", "input_ids", "labels"}], "rows_total", "rows_dropped",
    "tokens_total", "tokens_trained"}, labels -100 where nothing is trained."""
    from .preview import run_preview

    sys.exit(
        run_preview(config_path, _console(quiet, as_json), rows=n_rows, as_json=as_json, kind=kind)
    )


@cli.command("sync-metrics", context_settings=CONTEXT)
@click.argument("output_dir", type=click.Path(file_okay=False))
@click.option(
    "--to",
    "target",
    type=click.Choice(["mlflow"]),
    required=True,
    help="The tracker to upload to (MLflow: MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME).",
)
@output_options
def sync_metrics(output_dir: str, target: str, quiet: bool, as_json: bool) -> None:
    """Upload a finished, preempted or offline run (its metrics.jsonl, config and run.json,
    loss.svg) to a tracker, into the run the output folder already has there when it exists.
    Running it twice logs nothing twice."""
    from .tracking.sync import run_sync

    sys.exit(run_sync(output_dir, target, _console(quiet, as_json)))


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def entry(argv: list[str] | None = None, prog_name: str | None = None) -> int:
    """`main` as a process's entry point (download.py & co., `python -m lexalign`, the
    `lexalign` script): the process ends with the command (startup.py)."""
    from . import startup

    startup.process_entry()
    try:
        code = main(argv, prog_name)
    finally:
        startup.settled()
    startup.end(code)
    return code


def main(argv: list[str] | None = None, prog_name: str | None = None) -> int:
    """Run the CLI; return the exit code. `download.py` & co. pass their command name first."""
    args = list(sys.argv[1:] if argv is None else argv)
    RunState.debug = False
    command: click.Command = cli
    if prog_name and args and args[0] in cli.commands:
        command = cli.commands[args.pop(0)]
    try:
        signal.signal(signal.SIGTERM, _sigterm)
    except ValueError:  # not the main thread
        pass
    try:
        command.main(args=args, prog_name=prog_name or "lexalign", standalone_mode=False)
        return 0
    except SystemExit as exc:
        code = exc.code
        if isinstance(code, int) or code is None:
            return code or 0
        # sys.exit("message"): say it (Python prints it too when it is not caught)
        from .errors import one_line, redact

        sys.stderr.write(f"error: {redact(one_line(code, 600))}\n")
        return EXIT_FAILURE
    except click.exceptions.Abort:
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; run the same command again to resume\n")
        return EXIT_INTERRUPTED
    except PreemptedBeforeStart as exc:
        sys.stderr.write(f"preempted ({exc}) before the first training step; nothing to save\n")
        return exc.exit_code
    except LexAlignError as exc:
        import traceback

        from .errors import one_line, redact

        if RunState.debug:
            sys.stderr.write(redact(traceback.format_exc()))
        sys.stderr.write(f"error: {redact(one_line(exc, 600))}\n")
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - last resort: one line, traceback only with --debug
        import traceback

        from .errors import one_line, redact

        if RunState.debug:
            sys.stderr.write(redact(traceback.format_exc()))
        sys.stderr.write(
            f"error: unexpected {type(exc).__name__}: {redact(one_line(exc))} (run with --debug for the traceback)\n"
        )
        return EXIT_FAILURE


if __name__ == "__main__":  # python -m lexalign.cli
    sys.exit(entry())
