"""What ``upscale=2`` costs with each way of getting there, on one phone-sized photo.

1. ``x4v3 + resize`` (upstream's, kadr's default for ``medium``): realesr-general-x4v3 on
   the whole photo, its 4x output resized down to 2x with Lanczos;
2. ``x2plus`` (``high``): RealESRGAN x2plus, a 2x network, on the whole photo;
3. ``x4v3 on half``: the photo shrunk to half (area filter), then x4v3 to 2x: a quarter of
   the network's work.

Each runs in a fresh process (its own peak resident memory over the loaded model) with
the worker's tiles (services.enhance.tiling, 256 px). Reported: seconds, peak over the
loaded process, and how far each output is from the default's (mean absolute difference
and PSNR). With random weights (no official files here) the last two say how different
the outputs are, not which is more faithful: that needs the real weights and a reference
(``KADR_BENCH_MODELS_DIR``). Writes bench/results/scale_cost.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.enhance_overhead import models_dir_for  # noqa: E402
from bench.machine import machine_info  # noqa: E402

if TYPE_CHECKING:
    from services.enhance.upsamplers import UpsamplerKind

VARIANTS = ("x4v3_resize", "x2plus", "x4v3_half")


def run_variant(variant: str, models_dir: str, size: str, out: str) -> None:
    """In a fresh process: load, then time and measure one upscale x2 of the photo."""
    import gc

    import cv2
    import numpy as np
    import torch

    torch.set_flush_denormal(True)
    from services.enhance import models, tiling
    from services.enhance.upsamplers import UPSAMPLER_BYTES_PER_PIXEL
    from testbed import photos

    def status(field):
        with open("/proc/self/status") as f:
            return next(int(ln.split()[1]) for ln in f if ln.startswith(field + ":"))

    kind: UpsamplerKind = "x2plus" if variant == "x2plus" else "general_x4v3"
    up = models.build_upsampler(kind, Path(models_dir), torch.device("cpu"))
    net = tiling.Network.of(up, UPSAMPLER_BYTES_PER_PIXEL[kind])
    img = photos.photo(*photos.SIZES[size])
    h, w = img.shape[:2]
    gc.collect()
    idle = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    t0 = time.perf_counter()
    if variant == "x4v3_half":
        src = cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        bands = tiling.sr_bands(src, net, upscale=4, tile=256, pad=10)
    else:
        bands = tiling.sr_bands(img, net, upscale=2, tile=256 if kind != "x2plus" else 192, pad=10)
    result = np.concatenate([b.pixels for b in bands])
    seconds = time.perf_counter() - t0
    peak = status("VmHWM") - idle
    np.save(out, result)
    print(
        json.dumps(
            {"seconds": round(seconds, 2), "peak_over_loaded_mib": round(peak / 1024), "shape": list(result.shape)}
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="3mp")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/scale_cost.json")
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--models", help=argparse.SUPPRESS)
    ap.add_argument("--npy", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:
        return run_variant(args.variant, args.models, args.size, args.npy)
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="kadr-bench-scale-") as t:
        tmp = Path(t)
        models_dir, weights_kind = models_dir_for(tmp)
        rows, outputs = {}, {}
        for v in VARIANTS:
            npy = tmp / f"{v}.npy"
            res = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.scale_cost",
                    "--variant",
                    v,
                    "--models",
                    str(models_dir),
                    "--size",
                    args.size,
                    "--npy",
                    str(npy),
                ],
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            )
            rows[v] = json.loads(res.stdout.strip().splitlines()[-1])
            outputs[v] = np.load(npy)
            print(v, rows[v], flush=True)
    ref = outputs["x4v3_resize"].astype(np.float64)
    for v in VARIANTS:
        diff = np.abs(outputs[v].astype(np.float64) - ref)
        mse = float((diff**2).mean())
        rows[v].update(
            mean_abs_diff_vs_default=round(float(diff.mean()), 2),
            psnr_vs_default_db=None if mse == 0 else round(10 * np.log10(255**2 / mse), 2),
            time_vs_default=round(rows[v]["seconds"] / rows["x4v3_resize"]["seconds"], 3),
        )
    result = {
        "bench": "scale_cost",
        "machine": machine_info(),
        "weights": weights_kind,
        "size": args.size,
        "upscale": 2,
        "variants": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
