#!/bin/sh
# The GPU checks in one short, prepared run (a machine with CUDA and this project's Python
# stack; no Docker needed): the `gpu`-marked tests, including ZeRO-2/3 over NCCL and FSDP with
# LoRA in bf16 (python/tests/test_gpu.py), with a JUnit report. Run from python/:
#   sh benchmarks/gpu_check.sh [OUT_DIR]
# In the image: cargo xtask test-e2e --gpus all -- -m gpu
set -eu
out="${1:-${OUT:-/tmp/lexalign-gpu}}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpus.csv" 2>&1 || true
python -c 'import torch, sys; print(torch.__version__, torch.version.cuda, torch.cuda.device_count()); sys.exit(0 if torch.cuda.is_available() else 3)' | tee "$out/torch.txt"
exec python -m pytest -m gpu -p no:cacheprovider -q --durations=10 --junitxml "$out/gpu.xml" tests/test_gpu.py
