"""A single photo's wait behind a 10,000-item batch of another key.

On the local stack (Redis, one enhance worker, gunicorn, nginx): key A uploads a batch of
``--items`` photos (ZIPs of distinct ``--size`` JPEGs; paused while they go in, so all of
them wait) and resumes and closes it; while it runs, key B sends one photo of the same
size and options every ``--every`` seconds, ``--singles`` times. Each single's queue wait
(created -> started, from its job record) is compared
with one item's compute in the same run (started -> finished of the batch's items: the
baseline). Goal: p95 wait under 1.5 x the median item. The batch is canceled at the end
(it would take hours on this machine) and what it did so far is reported. Writes
bench/results/fairness.json.

    python -m bench.fairness [--items 10000 --singles 40 --every 5]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import requests
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import machine_info  # noqa: E402
from bench.stack_memory import pct  # noqa: E402
from services.contracts.settings import BatchSettings  # noqa: E402
from testbed.stack import kadr_env, start_gateway, start_nginx, start_redis, start_worker, stop_on_sigterm, wait_for  # noqa: E402
from testbed.weights import make_random_weights  # noqa: E402

GOAL_RATIO = 1.5
OPTIONS = {"quality": "medium", "upscale": "2", "max_faces": "0"}


def create_key(env: dict, name: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "client.cli", "keys", "create", name],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def photo(w: int, h: int, i: int) -> bytes:
    """A distinct JPEG per ``i`` (its first row encodes it): the batch dedupes by content."""
    arr = _BASE.setdefault((w, h), np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)).copy()
    arr[0, :32] = [[(i >> (k % 24)) & 1 and 255 or 0] * 3 for k in range(32)]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


_BASE: dict = {}


def zips(n: int, w: int, h: int, per_zip: int = 2000):
    for start in range(0, n, per_zip):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            for i in range(start, min(n, start + per_zip)):
                zf.writestr(f"p{i:05d}.jpg", photo(w, h, i))
        yield buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--singles", type=int, default=40)
    ap.add_argument("--every", type=float, default=3.0)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--concurrency", type=int, default=1, help="enhance pool processes (local stack: 1)")
    ap.add_argument("--out", default=str(ROOT / "bench/results/fairness.json"))
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    stop_on_sigterm()
    base = Path(tempfile.mkdtemp(prefix="kadr-fair-"))
    models = base / "models"
    make_random_weights(models)
    procs = []
    try:
        rproc, rurl = start_redis(base / "redis")
        procs.append(rproc)
        env = kadr_env(
            redis_url=rurl,
            storage_dir=base / "blobs",
            models_dir=models,
            KADR_REQUIRED_QUEUES='["enhance"]',
            KADR_MAX_REQUEST_BYTES=str(400 * 2**20),
        )
        procs.append(start_worker("enhance", env, base / "logs", concurrency=args.concurrency))
        gw, gurl = start_gateway(env, base / "logs")
        procs.append(gw)
        ngx, url = start_nginx(
            gurl.removeprefix("http://"), base / "logs", rate="1000r/s", burst=1000, max_body_bytes=400 * 2**20
        )
        procs.append(ngx)
        wait_for(lambda: requests.get(url + "/readyz", timeout=5).status_code == 200, 300, "the stack")
        a, b = requests.Session(), requests.Session()
        a.headers["Authorization"] = f"Bearer {create_key(env, 'batch-owner')}"
        b.headers["Authorization"] = f"Bearer {create_key(env, 'single-sender')}"

        t0 = time.monotonic()
        bid = a.post(
            f"{url}/api/v1/batches", json={"params": {k: int(v) if v.isdigit() else v for k, v in OPTIONS.items()}}
        ).json()["id"]
        a.post(f"{url}/api/v1/batches/{bid}/pause").raise_for_status()
        added = 0
        for z in zips(args.items, w, h):
            r = a.post(f"{url}/api/v1/batches/{bid}/items", files=[("files", ("part.zip", z))], timeout=600)
            r.raise_for_status()
            added += len(r.json()["accepted"])
        a.post(f"{url}/api/v1/batches/{bid}/close").raise_for_status()
        a.post(f"{url}/api/v1/batches/{bid}/resume").raise_for_status()
        upload_s = time.monotonic() - t0
        print(f"batch of {added} items uploaded in {upload_s:.0f} s", flush=True)

        singles = []
        for i in range(args.singles):
            r = b.post(f"{url}/api/v1/enhance", files={"file": ("one.jpg", photo(w, h, 10**6 + i))}, data=OPTIONS)
            r.raise_for_status()
            singles.append(r.json()["id"])
            time.sleep(args.every)
        jobs = [
            wait_for(
                lambda j=j: (d := b.get(f"{url}/api/v1/jobs/{j}").json())["state"] == "succeeded" and d,
                120,
                f"single {j}",
            )
            for j in singles
        ]
        view = a.get(f"{url}/api/v1/batches/{bid}", params={"limit": 0}).json()
        assert view["counts"]["pending"] > 0, "the batch ended before the singles: measure with more items"
        done = [
            x
            for x in a.get(f"{url}/api/v1/batches/{bid}/items", params={"limit": "10000", "state": "succeeded"}).json()[
                "items"
            ]
        ]
        sample = [a.get(f"{url}/api/v1/jobs/{x['id']}").json() for x in done[-200:]]
        a.post(f"{url}/api/v1/batches/{bid}/cancel").raise_for_status()

        waits = [j["started_at"] - j["created_at"] for j in jobs]
        single_compute = [j["finished_at"] - j["started_at"] for j in jobs]
        item_compute = [j["finished_at"] - j["started_at"] for j in sample]
        item_median = pct(item_compute, 0.5)
        wait_p95 = pct(waits, 0.95)
        result: dict[str, Any] = {
            "machine": machine_info(),
            "when": time.strftime("%Y-%m-%d %H:%M:%S"),
            "setup": {
                "batch_items": added,
                "photo": f"{w}x{h} JPEG",
                "options": OPTIONS,
                "enhance_pool_processes": args.concurrency,
                "singles": len(jobs),
                "every_s": args.every,
                "batch_window": BatchSettings.model_fields["batch_window"].default,
            },
            "batch": {
                "upload_s": round(upload_s, 1),
                "items_done_while_measured": view["counts"]["succeeded"],
                "items_pending_at_end": view["counts"]["pending"],
                "throughput_per_s": view.get("throughput_per_s"),
                "state_at_end": view["state"],
            },
            "item_compute_s": {"p50": item_median, "p95": pct(item_compute, 0.95), "n": len(item_compute)},
            "single_compute_s": {"p50": pct(single_compute, 0.5)},
            "single_queue_wait_s": {"p50": pct(waits, 0.5), "p95": wait_p95, "max": round(max(waits), 4)},
            "ratio_wait_p95_to_item": round(wait_p95 / item_median, 3) if wait_p95 and item_median else None,
            "goal_ratio": GOAL_RATIO,
        }
        result["goal_met"] = (
            result["ratio_wait_p95_to_item"] is not None and result["ratio_wait_p95_to_item"] < GOAL_RATIO
        )
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(base, ignore_errors=True)  # ~2 GB of blobs and Redis files


if __name__ == "__main__":
    main()
