"""Whole-stack memory against the origin's small box (2.9 GB RAM, 3 cores, 50 users).

Starts the compose topology as local processes (Redis, one gunicorn worker, nginx, the
enhance / segment / camera workers with one pool process each, the exporter, the
autoscaler in dry-run so the pools stay the size being measured) and records the
memory of every process tree (psutil, PSS: shared pages split among their sharers,
so the sum is what the machine holds) in three phases:

1. idle: everything ready, warm models loaded, no traffic;
2. after one job of each kind (lazily loaded models now resident too);
3. under 50 concurrent simulated users for ``--seconds``: each user loops, 80 % status
   polls (job list and a job) and 20 % photo uploads (small photo, ``fast``), with
   0.5–1.5 s think time; one of them first uploads a phone-sized photo (``--big``, 12 MP
   by default) at the server's defaults (medium, upscale 2, up to 20 faces), and the
   phase lasts until that photo is done too. Peak PSS per process over the phase is
   reported; uploads past the backlog limit get 503, which is the system working as
   designed, and are counted.

The budget is compared with the sum of peaks (a pessimistic total: not every process
peaks at once). Models are randomly initialised weights in the official formats: same
architectures, same tensors, so the same memory. Writes bench/results/stack_memory.json.
``python -m bench.stack_memory [--users 50 --seconds 60]``.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import machine_info  # noqa: E402
from testbed.stack import (  # noqa: E402
    kadr_env,
    start_gateway,
    start_nginx,
    start_ops,
    start_redis,
    start_worker,
    stop_on_sigterm,
    wait_for,
)

BUDGET_BYTES = int(2.9e9)
MIB = 2**20


def tree_memory(pid: int, kind: str) -> int:
    """``kind`` "pss": each shared page divided among the processes sharing it, so a
    prefork worker's parent and child (which share torch's pages after the fork) are not
    counted twice and the sum over processes is what the machine really holds; "rss":
    what ``top`` shows per process (double-counts shared pages)."""
    try:
        p = psutil.Process(pid)
        procs = [p] + p.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for q in procs:
        try:
            if kind == "pss":
                total += q.memory_full_info().pss
            elif kind == "anon":
                total += _pss_anon(q.pid)
            else:
                total += q.memory_info().rss
        except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
            pass
    return total


def _pss_anon(pid: int) -> int:
    """The anonymous part of a process's PSS (heap, tensors): what a container's memory
    limit cannot take back by dropping pages, unlike mapped library files."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss_Anon:"):
                return int(line.split()[1]) * 1024
    return 0


def snapshot(procs: dict[str, int], kind: str = "pss") -> dict[str, int]:
    return {name: tree_memory(pid, kind) for name, pid in procs.items()}


# As deployed (infra/local/worker.sh, docker-compose.yml): glibc's per-thread malloc
# arenas kept ~280 MiB of freed inference buffers in the enhance worker (peak 2228 →
# 1949 MiB PSS with 2 arenas, in this benchmark).
DEPLOYED_ENV = {"MALLOC_ARENA_MAX": "2"}


def photo(seed: int) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    img = (rng.random((96, 128, 3)) * 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=85)
    return buf.getvalue()


class Users:
    def __init__(self, url: str, key: str, n: int, seconds: float, big: bytes | None = None):
        self.url, self.key, self.n, self.seconds = url, key, n, seconds
        self.big, self.big_job, self.big_done = big, None, threading.Event()
        self.lock = threading.Lock()
        self.polls: list[float] = []
        self.uploads: list[float] = []
        self.status: dict[str, int] = {}
        self.job_ids: list[str] = []

    def _count(self, code: int | str) -> None:
        with self.lock:
            self.status[str(code)] = self.status.get(str(code), 0) + 1

    def user(self, i: int, stop_at: float) -> None:
        rng = random.Random(i)
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {self.key}"
        if i == 0 and self.big is not None:
            r = s.post(f"{self.url}/api/v1/enhance", timeout=120, files={"file": ("phone.jpg", self.big)})
            self._count(r.status_code)
            r.raise_for_status()
            self.big_job = r.json()
        while time.monotonic() < stop_at or (self.big is not None and not self.big_done.is_set()):
            t0 = time.perf_counter()
            try:
                if rng.random() < 0.2:
                    r = s.post(
                        f"{self.url}/api/v1/enhance",
                        timeout=30,
                        files={"file": (f"u{i}.jpg", photo(rng.randrange(10**9)))},
                        data={"quality": "fast", "upscale": "1", "max_faces": "1"},
                    )
                    with self.lock:
                        self.uploads.append(time.perf_counter() - t0)
                        if r.status_code == 202:
                            self.job_ids.append(r.json()["id"])
                else:
                    with self.lock:
                        jid = rng.choice(self.job_ids) if self.job_ids else None
                    r = s.get(f"{self.url}/api/v1/jobs/{jid}" if jid else f"{self.url}/api/v1/jobs", timeout=30)
                    with self.lock:
                        self.polls.append(time.perf_counter() - t0)
                self._count(r.status_code)
            except requests.RequestException as e:
                self._count(type(e).__name__)
            time.sleep(rng.uniform(0.5, 1.5))  # think time of a person at a browser

    def watch_big(self, timeout: float = 1800) -> None:
        """Until the big photo ends (the phase lasts at least that long)."""
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {self.key}"
        deadline = time.monotonic() + timeout
        while self.big_job is None and time.monotonic() < deadline:
            time.sleep(0.5)
        while self.big_job is not None and time.monotonic() < deadline:
            j = s.get(f"{self.url}/api/v1/jobs/{self.big_job['id']}", params={"wait": 30}, timeout=60).json()
            if j["state"] in ("succeeded", "failed", "canceled"):
                self.big_job = j
                break
        self.big_done.set()

    def run(self) -> None:
        stop_at = time.monotonic() + self.seconds
        threads = [threading.Thread(target=self.user, args=(i, stop_at), daemon=True) for i in range(self.n)]
        if self.big is not None:
            threads.append(threading.Thread(target=self.watch_big, daemon=True))
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, round(q * (len(xs) - 1)))], 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--big", default="12mp", help="a phone photo one user uploads first (3mp, 12mp, 24mp, none)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/stack_memory.json")
    args = ap.parse_args()
    stop_on_sigterm()
    from services.store.apikeys import create_key
    from testbed.mjpeg_server import MjpegServer
    from testbed.weights import make_random_weights

    with tempfile.TemporaryDirectory(prefix="kadr-bench-mem-") as t, MjpegServer(fps=10) as cam:
        tmp = Path(t)
        make_random_weights(tmp / "models")
        started = []
        try:
            redis_proc, redis_url = start_redis(tmp / "redis")
            started.append(redis_proc)
            cameras = [
                {
                    "id": "road",
                    "source": cam.url,
                    "fps": 10,
                    "buffer_seconds": 10,
                    "auth": "token",
                    "secret": "bench-camera-token-0123456789",
                }
            ]
            env = kadr_env(
                redis_url=redis_url,
                storage_dir=tmp / "blobs",
                models_dir=tmp / "models",
                KADR_CAMERAS=json.dumps(cameras),
                KADR_MAX_QUEUE_BACKLOG="100",
                KADR_WORKER_HEARTBEAT_SECONDS="2",
                **DEPLOYED_ENV,
            )
            workers = {s: start_worker(s, env, tmp / "logs") for s in ("enhance", "segment", "camera")}
            started += workers.values()
            gw, gw_url = start_gateway(env, tmp / "logs", workers=1)  # the origin's one API worker
            started.append(gw)
            ngx, url = start_nginx(gw_url.removeprefix("http://"), tmp / "logs", rate="1000r/s", burst=1000)
            started.append(ngx)
            exporter, _ = start_ops("exporter", env, tmp / "logs")
            scaler, _ = start_ops("autoscaler", env, tmp / "logs", KADR_AUTOSCALE_DRY_RUN="true")
            started += [exporter, scaler]
            wait_for(lambda: requests.get(url + "/readyz", timeout=5).status_code == 200, 300, "readiness")
            import redis

            key, _ = create_key(redis.Redis.from_url(redis_url, decode_responses=True), "bench")
            procs = {
                "redis": redis_proc.pid,
                "gateway (gunicorn, 1 worker)": gw.pid,
                "nginx": ngx.pid,
                **{f"{s} worker": w.pid for s, w in workers.items()},
                "exporter": exporter.pid,
                "autoscaler": scaler.pid,
            }
            time.sleep(5)  # the sampling moment, after start-up settled
            idle, idle_rss = snapshot(procs), snapshot(procs, "rss")

            s = requests.Session()
            s.headers["Authorization"] = f"Bearer {key}"
            jid = s.post(
                f"{url}/api/v1/enhance",
                files={"file": ("a.jpg", photo(1))},
                data={"quality": "medium", "max_faces": "1"},
            ).json()["id"]
            from testbed.synthetic_video import make_video, write_video

            vpath = write_video(make_video(24, 240, 320, seed=1).frames, tmp / "clip.mp4")
            with open(vpath, "rb") as f:
                vid = s.post(
                    f"{url}/api/v1/videos", files={"file": ("clip.mp4", f)}, data={"target_class": "car"}
                ).json()["id"]
            for path in (f"/api/v1/jobs/{jid}", f"/api/v1/videos/{vid}"):
                wait_for(
                    lambda path=path: s.get(url + path, params={"wait": 20}).json()["state"] in ("succeeded", "failed"),
                    600,
                    path,
                    interval=0,
                )
            warm, warm_rss = snapshot(procs), snapshot(procs, "rss")

            from testbed import photos

            big = None if args.big == "none" else photos.encode(photos.photo(*photos.SIZES[args.big]), "jpeg")
            users = Users(url, key, args.users, args.seconds, big)
            peak = dict(warm)
            peak_anon = snapshot(procs, "anon")
            done = threading.Event()

            def sample():
                while not done.is_set():
                    for name, v in snapshot(procs).items():
                        peak[name] = max(peak[name], v)
                    for name, v in snapshot(procs, "anon").items():
                        peak_anon[name] = max(peak_anon[name], v)
                    done.wait(0.5)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            t0 = time.perf_counter()
            users.run()
            wall = time.perf_counter() - t0
            done.set()
            sampler.join()
        finally:
            for p in reversed(started):
                p.stop()

    def mib(d):
        return {k: round(v / MIB, 1) for k, v in d.items()}

    totals = {
        "idle": sum(idle.values()),
        "models_loaded_after_jobs": sum(warm.values()),
        "peak_under_load_sum": sum(peak.values()),
    }
    result = {
        "benchmark": "stack_memory",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        "budget_bytes": BUDGET_BYTES,
        "env": DEPLOYED_ENV,
        "users": args.users,
        "seconds": round(wall, 1),
        "memory": "PSS (proportional set size) per process tree; RSS for comparison",
        "pss_mib": {"idle": mib(idle), "after_jobs": mib(warm), "peak_under_load": mib(peak)},
        "rss_mib": {"idle": mib(idle_rss), "after_jobs": mib(warm_rss)},
        # Heap and tensors only (no mapped library files): the part a limit cannot reclaim.
        "pss_anon_mib": {"peak_under_load": mib(peak_anon)},
        "total_mib": mib(totals),
        "peak_total_vs_budget": round(totals["peak_under_load_sum"] / BUDGET_BYTES, 3),
        "load": {
            "requests": sum(v for v in users.status.values()),
            "status": users.status,
            "requests_per_s": round(sum(users.status.values()) / wall, 1),
            "poll_p50_s": pct(users.polls, 0.5),
            "poll_p95_s": pct(users.polls, 0.95),
            "upload_p50_s": pct(users.uploads, 0.5),
            "upload_p95_s": pct(users.uploads, 0.95),
            "uploads_accepted": len(users.job_ids),
        },
        "big_photo": None
        if users.big_job is None
        else {
            "size": args.big,
            "state": users.big_job["state"],
            "params": users.big_job.get("params"),
            "seconds": (users.big_job.get("result") or {}).get("timings", {}).get("total_seconds"),
            "estimate": users.big_job.get("estimate"),
            "memory": (users.big_job.get("result") or {}).get("memory"),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: result[k]
                for k in ("pss_mib", "pss_anon_mib", "total_mib", "peak_total_vs_budget", "load", "big_photo")
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
