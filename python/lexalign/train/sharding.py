"""Sharded training: `training.sharding` (none | zero2 | zero3 | fsdp), `training.offload` and a
user's own `training.deepspeed` JSON.

- The DeepSpeed config is handed to transformers' TrainingArguments *before* the model loads,
  so under ZeRO-3 `from_pretrained` loads it already partitioned (no rank holds it whole).
- What runs is what was asked: after the trainer is set up, accelerate's distributed type is
  compared with the config, and a difference stops the run (exit 2) naming both.
- No compiler at run time: the only op DeepSpeed compiles for ZeRO on CPU is its shared-memory
  all-reduce for *inference* (never called by training), so it is not built unless a build of it
  is installed; offload keeps the trainer's torch AdamW (`zero_force_ds_cpu_optimizer: false`),
  the same optimizer DDP uses, instead of JIT-compiling DeepSpeedCPUAdam. An op a user's JSON
  asks for that needs compiling and cannot be: exit 1 naming the missing tool.

Over 400 lines: one concern (what a sharding setting becomes, end to end: keys, DeepSpeed JSON
checks, trainer arguments, the partitioned load and save); next split when it grows: the ZeRO-3
load/save into its own module.
"""

from __future__ import annotations

import json
import os
import shutil
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, RuntimeFailure

ZERO_STRATEGIES = {"zero2": 2, "zero3": 3}
# Top-level DeepSpeed keys whose type we check (the rest are checked by DeepSpeed's own models
# or only for being known).
_AUTO_INTS = ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps")
_SECTIONS = (
    "zero_optimization", "optimizer", "scheduler", "fp16", "bf16", "bfloat16", "amp",
    "activation_checkpointing", "flops_profiler", "tensorboard", "wandb", "csv_monitor", "comet",
    "comms_logger", "aio", "elasticity", "autotuning", "compression_training", "data_efficiency",
    "checkpoint", "nebula", "pipeline", "sparse_attention", "curriculum_learning",
    "progressive_layer_drop", "quantize_training", "eigenvalue", "hybrid_engine", "data_types",
    "compile", "timers", "weight_quantization", "monitor_config",
)  # fmt: skip


def check_keys(sharding: str, offload: str, deepspeed: str | None) -> None:
    """The combinations of training.sharding / offload / deepspeed that make sense (ValueError,
    one line naming the key and the fix; the config loader adds the file)."""
    if deepspeed is not None and sharding != "none":
        raise ValueError(
            f"training.deepspeed: a DeepSpeed JSON sets the sharding itself; remove "
            f"training.sharding: {sharding} (or training.deepspeed)"
        )
    if deepspeed is not None and offload != "none":
        raise ValueError(
            "training.offload: set offload in your DeepSpeed JSON (zero_optimization."
            "offload_optimizer / offload_param); remove training.offload"
        )
    if offload != "none" and sharding not in ZERO_STRATEGIES and deepspeed is None:
        raise ValueError(
            f"training.offload: {offload} offloads ZeRO state to CPU memory and needs "
            f"sharding: zero2 or zero3 (sharding is {sharding}); set sharding or offload: none"
        )
    if offload == "parameters" and sharding == "zero2":
        raise ValueError(
            "training.offload: parameters needs sharding: zero3 (ZeRO-2 keeps whole parameters on "
            "every rank and offloads only the optimizer); use offload: optimizer or sharding: zero3"
        )


def _key_error(path: str, key: str, message: str) -> ValueError:
    return ValueError(f"{path}: {key}: {message}")


def check_user_json(path: str) -> dict[str, Any]:
    """Read and validate a user's DeepSpeed JSON: an object, known top-level keys, integer (or
    "auto") batch keys, and the zero_optimization section by DeepSpeed's own model."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(
            f"cannot read {path} ({exc.strerror or exc}); give the path of a DeepSpeed JSON file"
        ) from None
    try:
        ds = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); fix the file") from None
    if not isinstance(ds, dict):
        raise ValueError(f"{path}: a DeepSpeed config is a JSON object; fix the file")
    _check_top_level(path, ds)
    _check_zero_section(path, ds.get("zero_optimization"))
    return ds


def _known_top_level() -> set[str]:
    from deepspeed.runtime import constants

    known = {v for k, v in vars(constants).items() if k.isupper() and isinstance(v, str)}
    return known | set(_SECTIONS)


def _check_top_level(path: str, ds: dict[str, Any]) -> None:
    known = _known_top_level()
    for key, value in ds.items():
        if key not in known:
            import difflib

            near = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean {near[0]}?" if near else "; remove it"
            raise _key_error(path, key, f"unknown DeepSpeed key{hint}")
        if key in _AUTO_INTS and not (value == "auto" or (type(value) is int and value > 0)):
            raise _key_error(path, key, f'must be a positive integer or "auto", not {value!r}')
        if key == "gradient_clipping" and not (
            value == "auto" or (isinstance(value, int | float) and not isinstance(value, bool))
        ):
            raise _key_error(path, key, f'must be a number or "auto", not {value!r}')
        if key in _SECTIONS and not isinstance(value, dict):
            raise _key_error(path, key, f"must be an object, not {value!r}")


def _check_zero_section(path: str, zero: Any) -> None:
    if zero is None:
        return
    from deepspeed.runtime.zero.config import DeepSpeedZeroConfig
    from pydantic import ValidationError

    try:
        DeepSpeedZeroConfig(**zero)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in ("zero_optimization", *err.get("loc", ())))
        fix = "remove it" if err.get("type") == "extra_forbidden" else "fix the value"
        raise _key_error(path, where, f"{err.get('msg')}; {fix}") from None


@dataclass(frozen=True)
class Sharding:
    """What a run asked for, in run.json's vocabulary."""

    strategy: str  # none | zero<stage> | deepspeed (a JSON with stage 0) | fsdp
    zero_stage: int | None
    offload: str
    deepspeed: dict[str, Any] | None  # the config handed to TrainingArguments
    generated: bool = False  # made from training.sharding (not a user's JSON)

    @property
    def uses_deepspeed(self) -> bool:
        return self.deepspeed is not None


def plan(t, device: str, source: str) -> Sharding:
    """The sharding of a run from its training config on this device (ConfigError: exit 2)."""
    if t.sharding == "fsdp" and device != "cuda":
        raise ConfigError(
            f"{source}: training.sharding: FSDP needs CUDA devices; on CPU use sharding: zero3"
        )
    if t.deepspeed is not None:
        ds = check_user_json(t.deepspeed) if t.deepspeed else {}
        stage = int((ds.get("zero_optimization") or {}).get("stage", 0))
        offload = _json_offload(ds)
        return Sharding(f"zero{stage}" if stage else "deepspeed", stage, offload, ds)
    if t.sharding in ZERO_STRATEGIES:
        stage = ZERO_STRATEGIES[t.sharding]
        return Sharding(t.sharding, stage, t.offload, zero_config(stage, t.offload), True)
    return Sharding(t.sharding, None, "none", None)


def _json_offload(ds: dict[str, Any]) -> str:
    zero = ds.get("zero_optimization") or {}
    device = lambda k: (zero.get(k) or {}).get("device", "none")  # noqa: E731
    if device("offload_param") not in ("none", None):
        return "parameters"
    return "optimizer" if device("offload_optimizer") not in ("none", None) else "none"


def zero_config(stage: int, offload: str) -> dict[str, Any]:
    """The DeepSpeed config of `sharding: zero2|zero3` ("auto" values come from the
    TrainingArguments, so batch, accumulation, clipping and precision have one source)."""
    zero: dict[str, Any] = {"stage": stage, "overlap_comm": False}
    if offload in ("optimizer", "parameters"):
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": False}
    if offload == "parameters":
        zero["offload_param"] = {"device": "cpu", "pin_memory": False}
    if stage == 3:
        # The adapter is saved from gathered LoRA weights (save_adapter below), never by
        # gathering the whole 16-bit model.
        zero["stage3_gather_16bit_weights_on_model_save"] = False
    return {
        "zero_optimization": zero,
        # offload keeps the trainer's torch AdamW: DDP's optimizer, no op to compile
        "zero_force_ds_cpu_optimizer": False,
        "zero_allow_untested_optimizer": True,
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "steps_per_print": 1_000_000_000,
        "wall_clock_breakdown": False,
    }


def prepare_process(sharding: Sharding) -> None:
    """Before TrainingArguments: one process gets the rendezvous variables DeepSpeed wants, and
    DeepSpeed does not compile the inference-only shared-memory op."""
    if not sharding.uses_deepspeed:
        return
    if "RANK" not in os.environ:  # one process, no launcher
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1")
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(port))
    _skip_inference_comm_op()
    if sharding.zero_stage == 3:
        _return_freed_blocks()


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def _return_freed_blocks() -> None:
    """ZeRO-3 gathers a layer's weights, uses them and frees them, over and over. glibc keeps
    freed blocks below its dynamic mmap threshold (which grows to 32 MB) in the heap, so the
    process's memory grows as if nothing were released (measured: 2.2 GB against 1.4 GB per rank
    for a 1.3 GB model). Blocks of 1 MiB and more are mapped, and unmapped when freed."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)
    except (OSError, AttributeError):  # not glibc
        pass


def _skip_inference_comm_op() -> None:
    """DeepSpeed's CPU backend JIT-compiles its shared-memory all-reduce at start-up; only
    inference (`inference_all_reduce`) calls it. Mark it unavailable unless a build of it is
    installed, so training needs no compiler."""
    from deepspeed import git_version_info as info

    name = "deepspeed_shm_comm"
    if not info.installed_ops.get(name, False):
        info.compatible_ops[name] = False


def missing_build_tools() -> list[str]:
    """What a DeepSpeed JIT build would lack here (empty when it can build)."""
    import importlib.util

    missing = []
    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        missing.append(f"a C++ compiler ({cxx}; install g++)")
    if shutil.which("ninja") is None:
        missing.append("ninja")
    if importlib.util.find_spec("setuptools") is None:
        missing.append("setuptools")
    include = sysconfig.get_paths().get("include") or ""
    if not (Path(include) / "Python.h").is_file():
        missing.append(f"the Python headers ({include}/Python.h; install python3.11-dev)")
    return missing


def compile_failure(exc: BaseException) -> RuntimeFailure | None:
    """A RuntimeFailure naming the missing tool when `exc` is a failed DeepSpeed op build."""
    text = f"{type(exc).__name__}: {exc}"
    markers = ("Ninja is required", "Error building extension", "setuptools", "c++", "which")
    if not any(m in text for m in markers):
        return None
    missing = missing_build_tools()
    if not missing:
        return RuntimeFailure(f"a DeepSpeed op failed to compile: {text.splitlines()[0][:300]}")
    return RuntimeFailure(
        "DeepSpeed needs to compile an op for this config and this environment lacks "
        + ", ".join(missing)
        + "; use training.sharding (no compiled op) instead of an optimizer or op from your "
        "DeepSpeed JSON, or install the tools"
    )


def distributed_record(trainer, sharding: Sharding) -> dict[str, Any]:
    """run.json `distributed`: what actually runs, read from accelerate's state."""
    state = trainer.accelerator.state
    kind = str(state.distributed_type).rsplit(".", 1)[-1]
    stage, offload = None, "none"
    if kind == "DEEPSPEED":
        stage = int(state.deepspeed_plugin.zero_stage)
        offload = _json_offload(state.deepspeed_plugin.deepspeed_config)
        strategy = f"zero{stage}" if stage else "deepspeed"
    elif kind == "FSDP":
        strategy = "fsdp"
    else:
        strategy = "none"
    import torch.distributed as dist

    backend = dist.get_backend() if dist.is_available() and dist.is_initialized() else None
    return {
        "strategy": strategy,
        "backend": backend,
        "world_size": int(state.num_processes),
        "zero_stage": stage,
        "offload": offload,
        "distributed_type": kind,
    }


def check_what_runs(record: dict[str, Any], sharding: Sharding, source: str) -> None:
    """Refuse to train when accelerate set up something other than what the config asks."""
    if (record["strategy"], record["offload"]) != (sharding.strategy, sharding.offload):
        raise ConfigError(
            f"{source}: training.sharding asks for {sharding.strategy} (offload "
            f"{sharding.offload}) but accelerate set up {record['strategy']} (offload "
            f"{record['offload']}, {record['distributed_type']}); check the launcher's "
            "accelerate config and environment (ACCELERATE_*) or set training.sharding to match"
        )


def _layer_classes(model_config) -> list[str]:
    """The decoder block classes FSDP wraps one by one (the model class's _no_split_modules)."""
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    name = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_config.model_type)
    cls = getattr(transformers, name, None) if name else None
    return list(getattr(cls, "_no_split_modules", None) or [])


def _zero3_memory(model_config) -> dict[str, Any]:
    """ZeRO-3 keeps about two decoder layers' weights gathered at a time (DeepSpeed's defaults,
    1e9 parameters live and a reuse distance of 1e9, keep a whole model below a billion
    parameters gathered on every rank: the memory ZeRO-3 is chosen to save). The unit is the
    larger of a decoder layer and the embedding: with less, DeepSpeed fails on tied embeddings
    ("Cannot partition a param in flight")."""
    hidden = int(getattr(model_config, "hidden_size", 0) or getattr(model_config, "n_embd", 0) or 0)
    vocab = int(getattr(model_config, "vocab_size", 0) or 0)
    unit = max(12 * hidden * hidden, vocab * hidden) if hidden else 10**8
    return {
        "stage3_max_live_parameters": 2 * unit,
        "stage3_max_reuse_distance": 2 * unit,
        # no prefetch: a parameter fetched ahead and still in flight is what DeepSpeed trips over
        # with tied embeddings ("Cannot partition a param in flight"); on CPU it overlaps little
        "stage3_prefetch_bucket_size": 0,
        "stage3_param_persistence_threshold": 10 * hidden if hidden else 10**5,
    }


def trainer_arguments(sharding: Sharding, model_config) -> dict[str, Any]:
    """The TrainingArguments keys of a sharding: `deepspeed` for ZeRO, `fsdp` + `fsdp_config`
    (peft's documented LoRA settings: whole decoder blocks, original parameters off, weights
    loaded on rank 0 and broadcast) for FSDP."""
    if sharding.uses_deepspeed:
        ds = sharding.deepspeed
        if sharding.generated and sharding.zero_stage == 3:
            ds = {
                **ds,
                "zero_optimization": {**ds["zero_optimization"], **_zero3_memory(model_config)},
            }
        return {"deepspeed": ds}
    if sharding.strategy == "fsdp":
        return {
            "fsdp": "full_shard auto_wrap",
            "fsdp_config": {
                "transformer_layer_cls_to_wrap": _layer_classes(model_config),
                "backward_prefetch": "backward_pre",
                "forward_prefetch": False,
                "use_orig_params": False,
                "sync_module_states": True,
                "cpu_ram_efficient_loading": True,
            },
        }
    return {}


def arguments(cls, source: str, **kwargs):
    """TrainingArguments (trl's SFTConfig/DPOConfig); a DeepSpeed JSON that contradicts them is
    a config error of one line, not transformers' multi-line ValueError."""
    try:
        return cls(**kwargs)
    except ValueError as exc:
        if "deepspeed" not in kwargs:
            raise
        lines = [ln.strip(" -") for ln in str(exc).splitlines() if ln.strip()]
        raise ConfigError(
            f'{source}: training.deepspeed: {"; ".join(lines)[:400]}; set those keys to "auto" '
            "(they come from training.*)"
        ) from None


def zero3() -> bool:
    from transformers.integrations import is_deepspeed_zero3_enabled

    return bool(is_deepspeed_zero3_enabled())


def merge_adapter(peft_model):
    """peft's merge_and_unload; under ZeRO-3 each LoRA layer's base weight is gathered for its
    merge (one layer at a time, so the whole model is never held by one rank)."""
    if zero3():
        import deepspeed
        from peft.tuners.tuners_utils import BaseTunerLayer

        for module in peft_model.modules():
            if isinstance(module, BaseTunerLayer):
                with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=0):
                    module.merge()
        model = peft_model.unload()
    else:
        model = peft_model.merge_and_unload()
    if hasattr(model, "peft_config"):
        del model.peft_config  # merged: a plain model again
    return model


def _whole(param):
    """A ZeRO-3 parameter's whole value, from its partitions (`ds_tensor`: what the optimizer
    updated) gathered with one plain all_gather. DeepSpeed's GatheredParameters read the
    parameter's gathered buffer, which after training can still hold a prefetch in flight: a
    final adapter saved that way was off by 0.19 in the logits in one of four CPU runs."""
    import torch
    import torch.distributed as dist

    if not hasattr(param, "ds_tensor"):
        return param.detach().cpu().clone()
    part = param.ds_tensor.detach().reshape(-1).cpu()
    parts = [torch.empty_like(part) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, part)
    return torch.cat(parts)[: param.ds_numel].view(param.ds_shape).clone()


def zero3_adapter_save(trainer_cls):
    """A trainer that saves a PEFT model under ZeRO-3 from its gathered LoRA weights only:
    transformers would otherwise gather the whole 16-bit model (and, with
    stage3_gather_16bit_weights_on_model_save off, write no adapter at all)."""

    class Zero3AdapterSave(trainer_cls):  # type: ignore[misc, valid-type]
        def save_model(self, output_dir=None, _internal_call=False):
            if not (self.is_deepspeed_enabled and zero3()):
                return super().save_model(output_dir, _internal_call)
            output_dir = output_dir or self.args.output_dir
            model = self.accelerator.unwrap_model(self.model)
            trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
            state = {n: _whole(p) for n, p in trained}  # every rank, in one order
            if self.args.should_save:
                self._save(output_dir, state_dict=state)

    Zero3AdapterSave.__name__ = trainer_cls.__name__
    return Zero3AdapterSave


def _checkpoint_files(model_dir: Path) -> dict[str, Path] | None:
    """Tensor name → safetensors file of a local model folder (None when it has none)."""
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        return {k: model_dir / v for k, v in weight_map.items()}
    single = model_dir / "model.safetensors"
    if not single.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(single), framework="pt") as f:
        return dict.fromkeys(f.keys(), single)


def _checkpoint_name(name: str, files: dict[str, Path], prefix: str) -> str | None:
    """The checkpoint's name of a model parameter (with or without the base model prefix)."""
    candidates = [name]
    if prefix and name.startswith(prefix + "."):
        candidates.append(name[len(prefix) + 1 :])
    elif prefix:
        candidates.append(f"{prefix}.{name}")
    return next((c for c in candidates if c in files), None)


def load_partitioned(model_dir: str, dtype, console) -> Any | None:
    """Under ZeRO-3: the model built partitioned (deepspeed.zero.Init) and its weights loaded one
    tensor at a time, read by rank 0 and scattered, in the same order on every rank, so no rank
    ever holds the whole model or its checkpoint. None when this is not a ZeRO-3 run or the
    model is not a local safetensors folder (transformers' own ZeRO-3 loading then applies)."""
    if not zero3():
        return None
    folder = Path(model_dir)
    if not folder.is_dir():
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(model_dir, allow_patterns=["*.json", "*.safetensors"]))
    files = _checkpoint_files(folder)
    if files is None:
        return None
    import deepspeed
    import torch.distributed as dist
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.integrations.deepspeed import deepspeed_config

    config = AutoConfig.from_pretrained(folder)
    with deepspeed.zero.Init(config_dict_or_path=deepspeed_config()):
        model = AutoModelForCausalLM.from_config(config, torch_dtype=dtype)
    prefix = getattr(model, "base_model_prefix", "")
    first = dist.get_rank() == 0
    missing = []
    for name, param in model.named_parameters():  # tied weights appear once
        key = _checkpoint_name(name, files, prefix)
        if key is None:
            missing.append(name)
            continue
        with deepspeed.zero.GatheredParameters([param], modifier_rank=0):
            if first:  # opened per tensor: the file's pages leave memory with it
                with safe_open(str(files[key]), framework="pt") as f:
                    param.data.copy_(f.get_tensor(key).to(param.dtype))
    _load_buffers(model, files, prefix)
    model.tie_weights()
    if missing and first:
        console.warn(f"{model_dir}: no weights in the checkpoint for {', '.join(missing[:5])}")
    return model.eval()  # as from_pretrained returns it


def _load_buffers(model, files: dict[str, Path], prefix: str) -> None:
    """Persistent buffers are not partitioned: every rank reads its own."""
    from safetensors import safe_open

    for name, buf in model.named_buffers():
        key = _checkpoint_name(name, files, prefix)
        if key is not None:
            with safe_open(str(files[key]), framework="pt") as f:
                buf.data.copy_(f.get_tensor(key).to(buf.dtype))
