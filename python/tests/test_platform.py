"""What must hold on every platform the image is built for (CI runs this file inside the
arm64 image too, under emulation on x86): a short LoRA SFT on a tiny model completes and
records the machine it ran on; QLoRA is refused on arm64 with exit 2 and the reason."""

from __future__ import annotations

import json
import platform

import pytest
from conftest import run_cli
from tiny import sft_rows, write_jsonl

from lexalign import testing

pytestmark = pytest.mark.integration


def _config(tmp_path, model, extra: str = "") -> str:
    data = write_jsonl(tmp_path / "sft.jsonl", sft_rows(24))
    p = tmp_path / "c.yaml"
    p.write_text(
        f"model: {model}\noutput_dir: {tmp_path / 'out'}\ndataset: {{path: {data}}}\n"
        "training: {max_steps: 3, learning_rate: 5.0e-3, batch_size: 4, max_length: 32, "
        "logging_steps: 1, save_steps: 3}\n" + extra
    )
    return str(p)


def test_a_short_lora_sft_runs_and_records_the_machine(tmp_path, tiny_model):
    r = run_cli("finetune", "--config", _config(tmp_path, tiny_model), cwd=tmp_path)
    assert r.code == 0, r.output
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["status"] == "completed" and run["final_step"] == 3
    assert run["environment"]["machine"] == platform.machine()
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("quant", ["4bit", "8bit"])
def test_qlora_is_refused_on_arm64_with_the_reason(tmp_path, tiny_model, quant):
    cfg = _config(tmp_path, tiny_model, f"quantization: {quant}\n")
    env = {} if platform.machine() == "aarch64" else testing.env(machine="aarch64")
    r = run_cli("finetune", "--config", cfg, "--dry-run", cwd=tmp_path, env=env)
    assert r.code == 2, r.output
    assert f"quantization: {quant} is not available on aarch64 (linux/arm64)" in r.stderr
    assert "x86_64" in r.stderr and "Traceback" not in r.output
