"""The sharding keys without torch: which combinations load, the one line each refusal gives,
the DeepSpeed config a strategy becomes, and the launcher's reading of worker exit codes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lexalign.config import Training
from lexalign.errors import EXIT_PREEMPTED, ConfigError
from lexalign.launch import _all_preempted
from lexalign.train.sharding import check_keys, plan, zero_config


@pytest.mark.parametrize(
    "keys",
    [
        {},
        {"sharding": "zero2"},
        {"sharding": "zero3", "offload": "parameters"},
        {"sharding": "zero2", "offload": "optimizer"},
        {"sharding": "fsdp"},
    ],
)
def test_sensible_combinations_load(keys):
    t = Training(**keys)
    assert t.sharding == keys.get("sharding", "none")


@pytest.mark.parametrize(
    "sharding, offload, deepspeed, expected",
    [
        ("none", "optimizer", None, "training.offload: optimizer offloads ZeRO state"),
        ("fsdp", "parameters", None, "needs sharding: zero2 or zero3"),
        ("zero2", "parameters", None, "training.offload: parameters needs sharding: zero3"),
        ("zero3", "none", "ds.json", "training.deepspeed: a DeepSpeed JSON sets the sharding"),
        ("none", "optimizer", "ds.json", "training.offload: set offload in your DeepSpeed JSON"),
    ],
)
def test_nonsense_is_one_line_naming_the_key_and_the_fix(sharding, offload, deepspeed, expected):
    with pytest.raises(ValueError) as err:
        check_keys(sharding, offload, deepspeed)
    text = str(err.value)
    assert expected in text and "\n" not in text
    assert any(fix in text for fix in ("set ", "use ", "remove "))


def test_the_config_loader_refuses_them_too():
    with pytest.raises(ValidationError, match="needs sharding: zero2 or zero3"):
        Training(offload="optimizer")
    with pytest.raises(ValidationError):
        Training(sharding="zero4")


def test_fsdp_needs_cuda():
    with pytest.raises(ConfigError, match="FSDP needs CUDA devices; on CPU use sharding: zero3"):
        plan(Training(sharding="fsdp"), "cpu", "cfg.yaml")
    assert plan(Training(sharding="fsdp"), "cuda", "cfg.yaml").strategy == "fsdp"


def test_a_strategy_becomes_a_deepspeed_config_with_one_source_of_truth():
    z3 = plan(Training(sharding="zero3", offload="parameters"), "cpu", "c")
    assert (z3.strategy, z3.zero_stage, z3.offload) == ("zero3", 3, "parameters")
    ds = z3.deepspeed
    assert ds["zero_optimization"]["stage"] == 3
    assert ds["zero_optimization"]["offload_param"]["device"] == "cpu"
    assert ds["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    # batch, accumulation, clipping and precision come from training.* ("auto")
    for key in (
        "train_micro_batch_size_per_gpu",
        "gradient_accumulation_steps",
        "gradient_clipping",
    ):
        assert ds[key] == "auto"
    assert ds["zero_force_ds_cpu_optimizer"] is False  # torch AdamW, no op to compile
    z2 = zero_config(2, "none")
    assert "offload_optimizer" not in z2["zero_optimization"]
    none = plan(Training(), "cpu", "c")
    assert (none.strategy, none.deepspeed, none.uses_deepspeed) == ("none", None, False)


def test_the_launcher_calls_it_preemption_only_when_every_worker_exited_75():
    assert _all_preempted([EXIT_PREEMPTED, EXIT_PREEMPTED])
    assert not _all_preempted([EXIT_PREEMPTED, 1])
    assert not _all_preempted([EXIT_PREEMPTED, None])  # one was killed
    assert not _all_preempted([])
