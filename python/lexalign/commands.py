"""The bodies of the CLI commands: load the config, run, print the summary, return the exit
code. Heavy modules (huggingface_hub, torch, trl) are imported here, never by `--help`."""

from __future__ import annotations

import os
import sys

from .console import Console, human_bytes
from .errors import ConfigError
from .kinds import TrainKind


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def run_download(config_path: str, console: Console, *, dry_run: bool, verify: bool) -> int:
    from .config import DownloadConfig, load_config

    cfg = load_config(config_path, DownloadConfig)
    from . import download, startup

    if verify:
        startup.settled()
        problems = download.verify(cfg, console)
        console.event("summary", verified=True, problems=problems)
        if problems:
            console.error(
                f"verify: {problems} problem(s); the bad files were dropped from their manifests, "
                "so running download again fetches them afresh"
            )
            return 1
        return 0

    from . import hubtoken

    token = hubtoken.current()
    from .download import hubparts

    hubparts.load()
    startup.settled()  # everything the run needs is imported (startup.py)
    offline = _truthy(os.environ.get("HF_HUB_OFFLINE"))
    downloader = download.Downloader(cfg, console, token=token, dry_run=dry_run, offline=offline)
    results = downloader.run()

    failed = [r for r in results if not r.status.succeeded]
    if dry_run:
        rows = [
            [
                r.repo_id,
                f"{r.revision} → {r.commit[:12] or '?'}",
                r.files,
                human_bytes(r.bytes),
                str(r.local_dir),
                str(r.status),
            ]
            for r in results
        ]
        total = sum(r.bytes for r in results)
        rows.append(["total", "", sum(r.files for r in results), human_bytes(total), "", ""])
        console.table(
            "download plan (dry run: nothing written)",
            ["repo", "revision → commit", "files", "bytes", "local_dir", "status"],
            rows,
        )
    else:
        rows = [
            [
                r.repo_id,
                r.commit[:12] or "-",
                r.files,
                human_bytes(r.bytes),
                f"{r.seconds:.1f}",
                str(r.status),
            ]
            for r in results
        ]
        console.table(
            "download summary", ["repo", "commit", "files", "bytes", "seconds", "status"], rows
        )
    console.event(
        "summary",
        repos=len(results),
        ok=len(results) - len(failed),
        failed=len(failed),
        bytes=sum(r.bytes for r in results),
        fetched_bytes=sum(r.fetched_bytes for r in results),
        dry_run=dry_run,
    )
    if console.mode == "quiet":
        for r in results:
            print(f"{r.repo_id}\t{r.commit or '-'}\t{r.status!s}")
    return 1 if failed else 0


def run_train(
    kind: TrainKind, config_path: str, console: Console, *, dry_run: bool, overwrite: bool
) -> int:
    from .config import load_config
    from .trainconfig import AlignConfig, FinetuneConfig

    cfg = load_config(config_path, FinetuneConfig if kind is TrainKind.FINETUNE else AlignConfig)
    from . import train

    return train.run(
        kind, cfg, console, config_path=config_path, dry_run=dry_run, overwrite=overwrite
    )


def run_export(
    adapter: str,
    output: str,
    console: Console,
    *,
    base: str | None,
    overwrite: bool,
    max_shard_size: str,
    dry_run: bool = False,
) -> int:
    from .export import export

    return export(
        adapter,
        output,
        console,
        base=base,
        overwrite=overwrite,
        max_shard_size=max_shard_size,
        dry_run=dry_run,
    )


def run_generate(
    console: Console,
    *,
    model: str | None,
    adapter: str | None,
    base: str | None,
    prompt: str,
    max_new_tokens: int,
    raw: bool = False,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
    dry_run: bool = False,
) -> int:
    """Print the completion of `prompt` by a model folder or a training output."""
    from . import models

    if (model is None) == (adapter is None):
        raise ConfigError(
            "generate: give exactly one of --model DIR (a model or an export) and --adapter DIR (a finetune/align output)"
        )
    if max_new_tokens < 1:
        raise ConfigError("generate: --max-new-tokens must be at least 1")
    if model is not None:
        models.check_model(model, "generate: --model")
        name = model
    else:
        adapter_dir = models.check_adapter(adapter, "generate: --adapter")
        name = models.adapter_base(adapter_dir, base, "generate: --adapter")
    if dry_run:
        what = model if model is not None else f"{adapter} on {name}"
        console.event(
            "plan", model=model, adapter=adapter, base=name, max_new_tokens=max_new_tokens
        )
        console.info(
            f"generate (dry run: nothing loaded): {what}, up to {max_new_tokens} tokens, "
            + (f"sampling at temperature {temperature}" if temperature > 0 else "greedy")
        )
        return 0
    from . import inference

    try:
        if model is not None:
            m, tok = inference.load_model(model)
        else:
            m, tok = inference.load(adapter, base=base)
    except (OSError, ValueError) as exc:
        raise models.load_error(name, exc, "generate") from None
    streaming = console.human  # tokens printed as they come

    def stream(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    text = inference.generate(
        m,
        tok,
        prompt,
        max_new_tokens,
        raw=raw,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        stream=stream if streaming else None,
    )
    console.event("completion", prompt=prompt, completion=text)
    if streaming:
        print()
    elif console.mode != "json":
        print(text)
    return 0
