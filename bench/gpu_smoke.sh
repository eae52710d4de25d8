#!/usr/bin/env bash
# The real-size photo bench on a CUDA device, in well under 5 minutes: 12 and 24 MP JPEG
# and HEIC photos at medium and high quality with faces, upscale 2, through a real
# worker (fp16 tiles sized from free device memory), then video frame batches through
# every segmentation model. Writes bench/results/real_photos_gpu.json and
# bench/results/segment_models_gpu.json. On a machine without an NVIDIA GPU it says so and
# exits 0: nothing to measure.
# Needs the project installed (`make install`; the weights are generated when
# KADR_BENCH_MODELS_DIR holds no official ones).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_smoke: no NVIDIA GPU answers here; skipped"
  exit 0
fi
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_smoke: torch sees no CUDA device (a CPU-only build?); skipped"
  exit 0
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
timeout 240 "$PY" -m bench.real_photos --sizes 12mp,24mp --formats jpeg,heic \
  --qualities medium,high --faces defaults --out bench/results/real_photos_gpu.json
# One video frame batch per segmentation model (batches of 1 and 4 frames at 520 px).
timeout 50 "$PY" -m bench.segment_speed --device cuda --repeats 3 \
  --out bench/results/segment_models_gpu.json
