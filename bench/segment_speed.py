"""Segmentation frames/s per model at 520 px on this machine (torchvision architectures,
random weights: the compute is the architecture's, the weights do not change it).
``--device cuda`` measures the same frame batches on a GPU (bench/gpu_smoke.sh).

Writes bench/results/segment_models.json; the fastest model is the baseline every
stabilization method is compared against in bench/stabilize_speed.py.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from bench.machine import machine_info
from services.contracts.segment_options import MODELS
from services.segment.models import class_probabilities, segmentation_network

ROOT = Path(__file__).resolve().parents[1]


def frames_per_second(name: str, size: int, batch: int, repeats: int, device: str = "cpu") -> dict:
    torch.set_flush_denormal(True)
    net = segmentation_network(name).eval()
    if getattr(net, "aux_classifier", None) is not None:
        net.aux_classifier = None  # type: ignore[assignment]  # as the worker runs it: main head only
    net = net.to(device)
    x = torch.rand(batch, 3, size, size, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    with torch.inference_mode():
        class_probabilities(net, x, 15)  # warm-up
        sync()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            class_probabilities(net, x, 15)
            sync()  # CUDA runs asynchronously: time the finished batch
            times.append(time.perf_counter() - t0)
    best = min(times)
    return {
        "model": name,
        "batch": batch,
        "seconds_per_batch_min": round(best, 4),
        "seconds_per_batch_median": round(sorted(times)[len(times) // 2], 4),
        "frames_per_second": round(batch / best, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=520)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/segment_models.json")
    a = ap.parse_args()
    rows = [frames_per_second(name, a.size, batch, a.repeats, a.device) for name in MODELS for batch in (1, 4)]
    fastest = max(r["frames_per_second"] for r in rows)
    for r in rows:
        r["ratio_vs_fastest"] = round(r["frames_per_second"] / fastest, 3)
    result = {
        "benchmark": "segment_models",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        "input": f"{a.size}x{a.size} RGB, 21 VOC classes",
        "threads": torch.get_num_threads(),
        "device": a.device,
        "rows": rows,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
