"""What one retention round costs the janitor at scale.

A real redis-server and a local blob store filled like a busy install: ``--photos``
finished photos (input + result each), ``--videos`` finished videos of ``--frames`` frames
(frames, probabilities, and one result set's masks and overlays: 4 files per frame), and
one still-running video of the same size. Timed, in one process:

- baseline: one plain walk of the whole store (``os.walk`` + ``lstat`` of every file),
  the least any listing-based policy can cost;
- the first round (every folder listed, every record read);
- the next round (finished things' sizes remembered: only the running video is listed);
- a round under a budget 10 % below what is stored (the oldest finished things removed).

Ratios against the baseline; the janitor's memory for what it remembers. Writes
bench/results/retention.json.

    python -m bench.retention_round [--photos 10000 --videos 3 --frames 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.machine import machine_info  # noqa: E402
from services.store.blobs import LocalBlobStore  # noqa: E402
from services.store.jobs import JobStore  # noqa: E402
from services.upkeep.retention import Retention  # noqa: E402
from testbed.stack import start_redis  # noqa: E402

DAY = 24 * 3600


def settings(budget: int = 0):
    return SimpleNamespace(
        retention_photos_seconds=7 * DAY,
        retention_videos_seconds=7 * DAY,
        retention_events_seconds=7 * DAY,
        retention_orphan_grace_seconds=3600.0,
        storage_budget_bytes=budget,
    )


def finish(jobs: JobStore, job_id: str, *, running: bool = False) -> None:
    jobs.begin(job_id, max_deliveries=3, worker="bench")
    if not running:
        jobs.transition(job_id, "succeeded", allowed_from=("running",))


def fill(jobs: JobStore, root: Path, photos: int, videos: int, frames: int) -> int:
    files = 0
    for i in range(photos):
        j = jobs.create(kind="enhance", owner=f"key{i % 20}", params={})
        d = root / "jobs" / j["id"]
        d.mkdir(parents=True)
        (d / "input").write_bytes(b"i" * 2048)
        (d / "result.jpg").write_bytes(b"r" * 4096)
        finish(jobs, j["id"])
        files += 2
    for v in range(videos + 1):
        running = v == videos
        job = jobs.create(kind="segment", owner="key0", params={})
        rs = jobs.create(kind="stabilize", owner="key0", params={"video_id": job["id"]}, parent_id=job["id"])
        base = root / "videos" / job["id"]
        for sub in ("frames", "prob", f"results/{rs['id']}/mask", f"results/{rs['id']}/overlay"):
            (base / sub).mkdir(parents=True)
            for n in range(frames):
                (base / sub / f"{n:06d}.png").write_bytes(b"f" * 512)
        (base / "input").write_bytes(b"v" * 65536)
        files += 4 * frames + 1
        finish(jobs, job["id"])
        finish(jobs, rs["id"], running=running)
    return files


def walk(root: Path) -> tuple[int, int]:
    total = n = 0
    for d, _, names in os.walk(root):
        for name in names:
            total += os.lstat(os.path.join(d, name)).st_size
            n += 1
    return total, n


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - t0, 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=10_000)
    ap.add_argument("--videos", type=int, default=3)
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--out", default=str(ROOT / "bench/results/retention.json"))
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="kadr-bench-retention-"))
    proc, url = start_redis(base / "redis")
    try:
        r = redis.Redis.from_url(url, decode_responses=True)
        jobs = JobStore(r, 30 * DAY)
        root = base / "blobs"
        (_, fill_s) = timed(lambda: fill(jobs, root, args.photos, args.videos, args.frames))
        (stored, files), walk_s = timed(lambda: walk(root))
        ret = Retention(jobs, LocalBlobStore(root), settings())
        first, first_s = timed(ret.sweep)
        n_items = len(first.items)
        second, second_s = timed(ret.sweep)
        assert not first.removed and not second.removed
        # Memory apart (tracing slows Python down): what a fresh janitor keeps after a round.
        probe = Retention(jobs, LocalBlobStore(root), settings())
        tracemalloc.start()
        rnd = probe.sweep()
        del rnd
        remembered = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        ret.s = settings(budget=int(stored * 0.9))
        budget, budget_s = timed(ret.sweep)
        result = {
            "machine": machine_info(),
            "when": time.strftime("%Y-%m-%d %H:%M:%S"),
            "setup": {
                "photos": args.photos,
                "videos_finished": args.videos,
                "videos_running": 1,
                "frames_per_video": args.frames,
                "files": files,
                "bytes": stored,
                "fill_seconds": fill_s,
            },
            "baseline_walk_s": walk_s,
            "first_round_s": first_s,
            "next_round_s": second_s,
            "budget_round": {
                "seconds": budget_s,
                "removed": len(budget.removed),
                "removed_bytes": sum(i.bytes for i, _ in budget.removed),
                "kinds": sorted({i.kind for i, _ in budget.removed}),
            },
            "ratio_first_to_walk": round(first_s / walk_s, 2) if walk_s else None,
            "ratio_next_to_walk": round(second_s / walk_s, 3) if walk_s else None,
            "remembered_bytes": remembered,
            "remembered_bytes_per_item": round(remembered / max(1, n_items)),
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    finally:
        proc.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
