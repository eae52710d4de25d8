"""Enhance benchmarks, each against its baseline in the same run.

1. System overhead: one photo end to end through nginx → gunicorn → Redis → Celery
   worker → storage → download, vs the stock ``GFPGANer.enhance`` called in-process on
   the same photo with the same model. Goal: ratio ≤ 1.05.
2. Resident vs cold: N photos through the API with the model resident in the worker,
   vs a fresh process per photo that loads the model first (the origin's design,
   8 s → 3 s per photo there).

Writes bench/results/enhance_overhead.json. Weights: the official files when
KADR_BENCH_MODELS_DIR holds them (``kadr models verify``), otherwise randomly
initialised weights in the official formats: same architectures, so the same compute,
and the work is bounded with only_center_face (random detectors "find" many faces).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import machine_info  # noqa: E402
from testbed.stack import kadr_env, start_gateway, start_nginx, start_redis, start_worker, stop_on_sigterm, wait_for  # noqa: E402

PARAMS = {"quality": "fast", "upscale": 2, "only_center_face": True}


def photo_bytes() -> bytes:
    from PIL import Image
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def models_dir_for(tmp: Path) -> tuple[Path, str]:
    given = os.environ.get("KADR_BENCH_MODELS_DIR")
    if given:
        from services.runtime.weights import verify

        if all(r.ok for r in verify(Path(given))):
            return Path(given), "official"
    from testbed.weights import make_random_weights

    d = tmp / "models"
    make_random_weights(d)
    return d, "random (official formats)"


def api_round_trip(session, url: str, photo: bytes, weight: float) -> tuple[float, float]:
    t0 = time.perf_counter()
    resp = session.post(
        f"{url}/api/v1/enhance",
        files={"file": ("astronaut.jpg", photo)},
        data={**{k: json.dumps(v) for k, v in PARAMS.items()}, "weight": str(weight)},
    )
    resp.raise_for_status()
    job_url = f"{url}/api/v1/jobs/{resp.json()['id']}"

    def done():
        # Server-side wait: no polling traffic competing with the worker for the CPU.
        j = session.get(job_url, params={"wait": 30}).json()
        return j if j["state"] in ("succeeded", "failed") else None

    job = wait_for(done, 600, "the job", interval=0)
    if job["state"] != "succeeded":
        raise RuntimeError(job["error"])
    img = session.get(f"{job_url}/result")
    img.raise_for_status()
    return time.perf_counter() - t0, job["result"]["timings"]["total_seconds"]


def direct_calls(models_dir: Path, photo: bytes, weights: list[float]) -> list[float]:
    """Stock GFPGANer.enhance in this process: the floor any service can reach."""
    from services.enhance import models
    from services.media import images
    from services.runtime.device import select_device

    restorer = models.build_restorer(models_dir, select_device("auto"))
    img = images.decode_bgr(photo, max_pixels=10**8)
    restorer.enhance(img, only_center_face=True, paste_back=True, weight=0.5)  # warm-up
    out = []
    for w in weights:
        t0 = time.perf_counter()
        restorer.enhance(img, only_center_face=True, paste_back=True, weight=w)
        out.append(time.perf_counter() - t0)
    return out


def cold_calls(models_dir: Path, photo_path: Path, tmp: Path, weights: list[float]) -> list[float]:
    out = []
    for i, w in enumerate(weights):
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.cold_once",
                str(models_dir),
                str(photo_path),
                str(tmp / f"cold-{i}.jpg"),
                str(w),
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        out.append(time.perf_counter() - t0)
    return out


def summary(xs: list[float]) -> dict:
    xs = sorted(xs)
    return {
        "n": len(xs),
        "median_s": round(statistics.median(xs), 3),
        "min_s": round(xs[0], 3),
        "max_s": round(xs[-1], 3),
        "mean_s": round(statistics.fmean(xs), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5, help="photos per measurement")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/enhance_overhead.json")
    args = ap.parse_args()
    stop_on_sigterm()
    photo = photo_bytes()
    with tempfile.TemporaryDirectory(prefix="kadr-bench-") as t:
        tmp = Path(t)
        models_dir, weights_kind = models_dir_for(tmp)
        photo_path = tmp / "astronaut.jpg"
        photo_path.write_bytes(photo)
        # Distinct blend weights so the result cache never answers.
        ws = [round(0.40 + 0.01 * i, 2) for i in range(args.n)]
        procs = []
        try:
            redis_proc, redis_url = start_redis(tmp / "redis")
            procs.append(redis_proc)
            env = kadr_env(redis_url=redis_url, storage_dir=tmp / "blobs", models_dir=models_dir)
            procs.append(start_worker("enhance", env, tmp / "logs"))
            gw, gw_url = start_gateway(env, tmp / "logs")
            procs.append(gw)
            ngx, url = start_nginx(gw_url.removeprefix("http://"), tmp / "logs", rate="1000r/s", burst=1000)
            procs.append(ngx)
            import redis

            from services.store.apikeys import create_key
            from services.store.workers import live_workers

            r = redis.Redis.from_url(redis_url, decode_responses=True)
            wait_for(
                lambda: any(w["models"].get("gfpgan", {}).get("state") == "ready" for w in live_workers(r)),
                300,
                "worker models",
            )
            key, _ = create_key(r, "bench")
            s = requests.Session()
            s.headers["Authorization"] = f"Bearer {key}"
            api_round_trip(s, url, photo, 0.99)  # warm-up: first-call allocations
            api, worker = zip(*[api_round_trip(s, url, photo, w) for w in ws])
        finally:
            for p in reversed(procs):
                p.stop()
        # Measured with the stack stopped, so neither side competes with the other for the CPU.
        direct = direct_calls(models_dir, photo, ws)
        cold = cold_calls(models_dir, photo_path, tmp, ws[: max(2, args.n // 2)])

    api_s, direct_s, cold_s = summary(list(api)), summary(direct), summary(cold)
    result = {
        "benchmark": "enhance_overhead",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        "weights": weights_kind,
        "photo": "skimage astronaut 512x512 JPEG",
        "params": PARAMS,
        "api_end_to_end": api_s,
        "worker_job_compute": summary(list(worker)),
        "direct_gfpganer_enhance": direct_s,
        "cold_process_per_photo": cold_s,
        "overhead_ratio_api_vs_direct": round(api_s["median_s"] / direct_s["median_s"], 3),
        "overhead_goal": 1.05,
        "cold_vs_resident_ratio": round(cold_s["median_s"] / api_s["median_s"], 3),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
