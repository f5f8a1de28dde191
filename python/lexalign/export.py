"""`lexalign export`: merge a LoRA adapter (and, for an align output, the SFT adapter under it)
into its base model and write a standalone model that plain
`transformers.AutoModelForCausalLM.from_pretrained(DIR)` loads: sharded safetensors, config,
generation config, tokenizer and a model card.

The merge runs in fp32 on the unquantised base (a QLoRA adapter merges into the full-precision
weights), and the result is saved in the base model's own dtype. The output appears in one
rename: a failed export leaves nothing half-written, and `--overwrite` replaces an old export
only once the new one is complete.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from . import models
from .console import Console
from .errors import ConfigError, RuntimeFailure, one_line
from .io import atomic_write_text, usual_modes

DEFAULT_SHARD = "2GB"


def check_output(output: Path, overwrite: bool) -> None:
    if output.exists() and not output.is_dir():
        raise ConfigError(f"--output {output} is a file; give a folder for the exported model")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise ConfigError(
            f"--output {output} exists and is not empty; pass --overwrite to replace it, or pick a new folder"
        )


def _base_dtype(base: str) -> str:
    """The dtype the base model is stored in (config.json's dtype/torch_dtype), default float32."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(base)
    dtype = getattr(cfg, "dtype", None) or getattr(cfg, "torch_dtype", None) or "float32"
    return str(dtype).removeprefix("torch.")


def merged_model(adapter_dir: Path, base: str, dtype: str | None = None):
    """base (fp32) + base_adapter (align outputs) + adapter, merged; cast to `dtype` if given."""
    import sys

    sys.modules.setdefault("bitsandbytes", None)  # type: ignore[arg-type]  # merge is unquantised
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    run = _run_json(adapter_dir)
    if run.get("base_adapter"):
        model = PeftModel.from_pretrained(model, str(adapter_dir / run["base_adapter"]))
        model = model.merge_and_unload()
        if hasattr(model, "peft_config"):
            del model.peft_config  # merged: a plain model again
    model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    if hasattr(model, "peft_config"):
        del model.peft_config
    if dtype:
        model = model.to(getattr(torch, dtype))
    model.eval()
    return model


def _run_json(adapter_dir: Path) -> dict[str, Any]:
    p = adapter_dir / "run.json"
    try:
        return json.loads(p.read_text()) if p.is_file() else {}
    except ValueError:
        return {}


def model_card(adapter_dir: Path, base: str, dtype: str) -> str:
    """README.md of the export: where it came from, how it was trained, on what."""
    import yaml

    run = _run_json(adapter_dir)
    lines = [
        "---",
        "library_name: transformers",
        f"base_model: {base}",
        "tags: [lexalign, lora, merged]",
        "---",
        f"# {Path(base).name} + LexAlign {run.get('kind', 'adapter')} (merged)",
        "",
        f"Merged from the LoRA adapter in `{adapter_dir}`"
        + (" and the SFT adapter it was aligned from" if run.get("base_adapter") else "")
        + f" into `{base}`; merged in fp32 and saved as {dtype}. Load it with "
        "`AutoModelForCausalLM.from_pretrained`; no peft needed.",
        "",
        f"Exported {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}.",
        "",
    ]
    if run:
        lines += [
            "## Training",
            "",
            f"- method: {run.get('method')}, status: {run.get('status')}, steps: {run.get('final_step')}",
            f"- final train loss: {run.get('final_loss')}",
        ]
        if run.get("eval"):
            e = run["eval"]
            lines.append(
                f"- eval loss: first {e.get('first_loss')}, best {e.get('best_loss')} "
                f"(step {e.get('best_step')}), last {e.get('last_loss')}"
            )
        lines += [
            "",
            "Config:",
            "",
            "```yaml",
            yaml.safe_dump(run.get("config", {}), sort_keys=False).rstrip(),
            "```",
            "",
        ]
        lines += [
            "## Environment",
            "",
            "```json",
            json.dumps(
                {"versions": run.get("versions"), "environment": run.get("environment")}, indent=2
            ),
            "```",
            "",
        ]
    return "\n".join(lines) + "\n"


def export(
    adapter: str,
    output: str,
    console: Console,
    *,
    base: str | None = None,
    overwrite: bool = False,
    max_shard_size: str = DEFAULT_SHARD,
    dry_run: bool = False,
) -> int:
    where = "export"
    adapter_dir = models.check_adapter(adapter, f"{where}: --adapter")
    out = Path(output).expanduser()
    check_output(out, overwrite)
    base_name = models.adapter_base(adapter_dir, base, f"{where}: --adapter")
    if dry_run:
        replaced = out.exists() and any(out.iterdir())
        console.event(
            "plan", adapter=str(adapter_dir), base=base_name, output=str(out), replaces=replaced
        )
        console.info(
            f"export (dry run: nothing written): merge {adapter_dir} into {base_name} → {out}"
            + (" (replacing what is there: --overwrite)" if replaced else "")
        )
        return 0

    try:
        dtype = _base_dtype(base_name)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir))
    except (OSError, ValueError) as exc:
        raise models.load_error(base_name, exc, where) from None
    console.info(f"merging {adapter_dir} into {base_name} (fp32) → {out} ({dtype})")
    try:
        model = merged_model(adapter_dir, base_name, dtype)
    except (OSError, ValueError) as exc:
        raise models.load_error(base_name, exc, where) from None

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True, max_shard_size=max_shard_size)
        if model.generation_config is not None and not (tmp / "generation_config.json").exists():
            model.generation_config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_text(tmp / "README.md", model_card(adapter_dir, base_name, dtype))
        usual_modes(tmp)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{int(time.time())}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeFailure(f"export: cannot write {out}: {one_line(exc)}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = sorted(p.name for p in out.iterdir())
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    console.event("summary", output=str(out), base=base_name, dtype=dtype, files=files, bytes=size)
    console.info(
        f"exported {out} ({size / 1e6:.1f} MB, {dtype}); load it with AutoModelForCausalLM.from_pretrained"
    )
    return 0
