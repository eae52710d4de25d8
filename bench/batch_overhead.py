"""Batch orchestration with the compute taken out: 10,000 items through nginx →
gunicorn → Redis → Celery → the enhance worker → storage.

Each item is a real enhance request shaped to do almost nothing: a small photo,
``quality=fast``, ``upscale=1``, ``max_faces=0`` (no detector pass), so what is left is
the system: upload parsing and checks, blob writes, job records, windowed feeding,
Celery delivery, the worker's job life cycle, result writes.

1. Throughput: ``--items`` photos (default 10,000) streamed in by 4 parallel uploaders
   (20 per request), then closed; items/s from first upload to last item ended.
2. Per-item overhead: photos sent one at a time (new batch, upload, wait for the item
   with ``?wait``), end-to-end time minus the worker's own compute time
   (``result.timings.total_seconds``); p50/p95, from a lean HTTP client (``LeanClient``).
   Baselines in the same run: the same request as a single-photo job (``POST /enhance``),
   same subtraction; and two floors no item can go under: an empty request's round trip
   through nginx (``/healthz``) and an empty Celery task's send → start
   (``bench/celery_floor.py``).
3. Memory per 10,000 items: gateway RSS and Redis ``used_memory`` before and after.
4. Time to first result: streaming (items go out as they arrive) vs one-shot (all
   uploaded first, then run), for ``--first-items`` photos.

Goals on this 2-core machine: ≥ 100 items/s, ≤ 10 ms p50 overhead. Writes
bench/results/batch_overhead.json. ``python -m bench.batch_overhead [--items N]``.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import celery_floor  # noqa: E402
from bench.machine import machine_info  # noqa: E402
from testbed.stack import kadr_env, start_gateway, start_nginx, start_redis, start_worker, stop_on_sigterm, wait_for  # noqa: E402

PARAMS = {"quality": "fast", "upscale": 1, "max_faces": 0}
PER_REQUEST = 20
UPLOADERS = 4


def photos(n: int, start: int = 0) -> list[bytes]:
    """Distinct 32×24 PNGs (distinct content: dedupe must not help)."""
    import numpy as np
    from PIL import Image

    out = []
    for i in range(start, start + n):
        img = np.full((24, 32, 3), 128, np.uint8)
        img.reshape(-1)[:8] = np.frombuffer(i.to_bytes(8, "little"), np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def pct(xs, q):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, round(q * (len(xs) - 1)))], 5)


def tree_rss(pid: int) -> int:
    p = psutil.Process(pid)
    return sum(q.memory_full_info().pss for q in [p, *p.children(recursive=True)])


def new_batch(s, url) -> str:
    r = s.post(f"{url}/api/v1/batches", json={"params": PARAMS})
    r.raise_for_status()
    return r.json()["id"]


def upload(s, url, bid, chunk: list[tuple[str, bytes]]) -> None:
    while True:
        r = s.post(f"{url}/api/v1/batches/{bid}/items", files=[("files", f) for f in chunk])
        if r.status_code == 503:
            time.sleep(float(r.headers.get("Retry-After", 1)))
            continue
        r.raise_for_status()
        return


def wait_batch(s, url, bid, timeout=3600) -> dict:
    return wait_for(
        lambda: (
            (b := s.get(f"{url}/api/v1/batches/{bid}", params={"limit": 0}).json())["state"]
            in ("succeeded", "partial", "failed")
            and b
        ),
        timeout,
        "the batch",
        interval=0.25,
    )


def throughput(s, url, n: int) -> dict:
    data = photos(n)
    bid = new_batch(s, url)
    chunks = [[(f"p{i + j}.png", d) for j, d in enumerate(data[i : i + PER_REQUEST])] for i in range(0, n, PER_REQUEST)]
    t0 = time.perf_counter()
    lock = threading.Lock()

    def uploader():
        sess = requests.Session()
        sess.headers.update(s.headers)
        while True:
            with lock:
                if not chunks:
                    return
                chunk = chunks.pop(0)
            upload(sess, url, bid, chunk)

    threads = [threading.Thread(target=uploader) for _ in range(UPLOADERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    uploaded_s = time.perf_counter() - t0
    s.post(f"{url}/api/v1/batches/{bid}/close").raise_for_status()
    b = wait_batch(s, url, bid)
    wall = time.perf_counter() - t0
    return {
        "items": n,
        "batch": bid,
        "upload_seconds": round(uploaded_s, 2),
        "wall_seconds": round(wall, 2),
        "items_per_s": round(n / wall, 1),
        "upload_items_per_s": round(n / uploaded_s, 1),
        "counts": b["counts"],
    }


class LeanClient:
    """One kept-alive ``http.client`` connection, bodies encoded before the clock starts:
    the overhead measured is the system's, not the client library's (``requests`` adds
    ~2 ms per call on this machine: ``GET /healthz`` 3.6 ms with it, 1.2 ms without)."""

    def __init__(self, url: str, key: str):
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.headers = {"Authorization": f"Bearer {key}"}

    def raw(self, method: str, path: str, body: bytes | None = None, ctype: str | None = None) -> bytes:
        headers = {**self.headers, **({"Content-Type": ctype} if ctype else {})}
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status} {data[:300]!r}")
        return data

    def call(self, method: str, path: str, body: bytes | None = None, ctype: str | None = None) -> dict:
        data = self.raw(method, path, body, ctype)
        return json.loads(data) if data else {}

    @staticmethod
    def multipart(field: str, name: str, data: bytes, fields: dict | None = None) -> tuple[bytes, str]:
        b = uuid.uuid4().hex
        parts = [
            f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
            for k, v in (fields or {}).items()
        ]
        parts.append(
            f'--{b}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
        return b"".join(parts) + f"--{b}--\r\n".encode(), f"multipart/form-data; boundary={b}"


STAGES = ("upload_to_created", "created_to_started", "run_outside_work", "finished_to_answer")


def stages(sent: float, answered: float, job: dict) -> dict[str, float]:
    """Where one item's overhead went, from the job's own timestamps (wall clock, this
    host's, rounded to 1 ms by the job store: read the means): the upload until the job
    was recorded; until a worker began it (dispatch, Celery delivery, ``begin``); the run
    outside the work function's timed part; and from its end to the client holding the
    answer (the event, the ``?wait`` wake-up, the response)."""
    work = job["result"]["timings"]["total_seconds"]
    return {
        "upload_to_created": job["created_at"] - sent,
        "created_to_started": job["started_at"] - job["created_at"],
        "run_outside_work": job["finished_at"] - job["started_at"] - work,
        "finished_to_answer": answered - job["finished_at"],
    }


def overhead(c: LeanClient, n: int) -> dict:
    """Per item: upload, then ``?wait`` for its end; the time minus the worker's own
    compute, and where it went (:func:`stages`). The same for a single-photo job (the
    baseline), and an empty request's round trip through nginx (the floor of any one call)."""
    kinds = ("batch_item", "single_job")
    totals: dict[str, list[float]] = {kind: [] for kind in kinds}
    floor: list[float] = []
    split: dict[str, dict[str, list[float]]] = {kind: {k: [] for k in STAGES} for kind in kinds}

    def timed(kind: str, path: str, body: bytes, ctype: str, ident) -> None:
        sent, t0 = time.time(), time.perf_counter()
        jid = ident(c.call("POST", path, body, ctype))
        job = c.call("GET", f"/api/v1/jobs/{jid}?wait=30")
        totals[kind].append(time.perf_counter() - t0 - job["result"]["timings"]["total_seconds"])
        for k, v in stages(sent, time.time(), job).items():
            split[kind][k].append(v)

    for i, data in enumerate(photos(n, start=10**6)):
        bid = c.call("POST", "/api/v1/batches", json.dumps({"params": PARAMS}).encode(), "application/json")["id"]
        body, ctype = c.multipart("files", f"o{i}.png", data)
        timed("batch_item", f"/api/v1/batches/{bid}/items", body, ctype, lambda r: r["accepted"][0]["id"])
        # Closed once timed, as a client does: a key may hold only so many open batches.
        c.call("POST", f"/api/v1/batches/{bid}/close")
        body, ctype = c.multipart("file", f"s{i}.png", data, {k: str(v) for k, v in PARAMS.items()})
        timed("single_job", "/api/v1/enhance", body, ctype, lambda r: r["id"])
        t0 = time.perf_counter()
        c.call("GET", "/healthz")
        floor.append(time.perf_counter() - t0)

    def summary(xs):
        return {"p50": pct(xs, 0.5), "p95": pct(xs, 0.95), "mean": round(statistics.fmean(xs), 5)}

    return {
        "items": n,
        "client": "http.client, one kept-alive connection",
        "batch_item_overhead_s": summary(totals["batch_item"]),
        "single_job_overhead_s": summary(totals["single_job"]),
        "empty_request_round_trip_s": summary(floor),
        "stage_means_s": {
            kind: {k: round(statistics.fmean(v), 5) for k, v in ks.items()} for kind, ks in split.items()
        },
    }


def item_pages(c: LeanClient, bid: str, items: int, page: int = 500, rounds: int = 3) -> dict:
    """Read a finished batch's items a page at a time, as the Photos page and exports do:
    each row is decoded from Redis and validated through its response model."""
    times, sizes = [], []
    # The connection idled through the whole throughput run: nginx's keep-alive (75 s) may
    # have closed it, and http.client opens a new one only after an explicit close.
    c.conn.close()
    for _ in range(rounds):
        for offset in range(0, items, page):
            t0 = time.perf_counter()
            body = c.raw("GET", f"/api/v1/batches/{bid}/items?limit={page}&offset={offset}")
            times.append(time.perf_counter() - t0)
            sizes.append(len(body))
    p50 = pct(times, 0.5)
    return {
        "rows_per_page": page,
        "pages": len(times),
        "page_s": {"p50": p50, "p95": pct(times, 0.95), "mean": round(statistics.fmean(times), 5)},
        "ms_per_row_p50": round(p50 * 1000 / page, 3),
        "bytes_per_page_p50": int(statistics.median(sizes)),
    }


def first_result(s, url, n: int) -> dict:
    out = {}
    for mode, start in (("streaming", 2 * 10**6), ("one_shot", 3 * 10**6)):
        data = photos(n, start=start)
        bid = new_batch(s, url)
        if mode == "one_shot":
            s.post(f"{url}/api/v1/batches/{bid}/pause")  # nothing runs until every photo is in
        t0 = time.perf_counter()
        first = None
        for i, d in enumerate(data):
            upload(s, url, bid, [(f"f{i}.png", d)])
            if first is None and mode == "streaming":
                b = s.get(f"{url}/api/v1/batches/{bid}", params={"limit": 0}).json()
                if b["counts"]["succeeded"]:
                    first = time.perf_counter() - t0
        s.post(f"{url}/api/v1/batches/{bid}/close")
        if mode == "one_shot":
            s.post(f"{url}/api/v1/batches/{bid}/resume")
        if first is None:
            first = wait_for(
                lambda bid=bid, t0=t0: (
                    s.get(f"{url}/api/v1/batches/{bid}", params={"limit": 0}).json()["counts"]["succeeded"]
                    and time.perf_counter() - t0
                ),
                600,
                "a first result",
                interval=0.005,
            )
        wait_batch(s, url, bid)
        out[mode] = round(first, 4)
    out["ratio_one_shot_vs_streaming"] = round(out["one_shot"] / out["streaming"], 1)
    out["items"] = n
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--overhead-items", type=int, default=100)
    ap.add_argument("--first-items", type=int, default=200)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=2, help="enhance pool processes")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/batch_overhead.json")
    args = ap.parse_args()
    stop_on_sigterm()
    from services.store.apikeys import create_key
    from testbed.weights import make_random_weights

    with tempfile.TemporaryDirectory(prefix="kadr-bench-batch-") as t:
        tmp = Path(t)
        make_random_weights(tmp / "models")
        procs = []
        try:
            redis_proc, redis_url = start_redis(tmp / "redis")
            procs.append(redis_proc)
            env = kadr_env(
                redis_url=redis_url,
                storage_dir=tmp / "blobs",
                models_dir=tmp / "models",
                KADR_BATCH_WINDOW=str(args.window),
                KADR_WORKER_HEARTBEAT_SECONDS="2",
                KADR_REQUIRED_QUEUES=json.dumps(["enhance"]),
            )
            procs.append(start_worker("enhance", env, tmp / "logs", concurrency=args.concurrency))
            gw, gw_url = start_gateway(env, tmp / "logs")
            procs.append(gw)
            ngx, url = start_nginx(gw_url.removeprefix("http://"), tmp / "logs", rate="10000r/s", burst=10000)
            procs.append(ngx)
            wait_for(lambda: requests.get(url + "/readyz", timeout=5).status_code == 200, 300, "readiness")
            import redis

            r = redis.Redis.from_url(redis_url, decode_responses=True)
            key, _ = create_key(r, "bench")
            s = requests.Session()
            s.headers["Authorization"] = f"Bearer {key}"
            lean = LeanClient(url, key)
            overhead(lean, 5)  # warm-up: first-call allocations, model load
            mem0 = {"gateway_pss": tree_rss(gw.pid), "redis_used": int(r.info("memory")["used_memory"])}
            tp = throughput(s, url, args.items)
            mem1 = {"gateway_pss": tree_rss(gw.pid), "redis_used": int(r.info("memory")["used_memory"])}
            pages = item_pages(lean, tp["batch"], args.items)
            oh = overhead(lean, args.overhead_items)
            floor = celery_floor.measure(redis_url, args.overhead_items, tmp / "logs")
            oh["celery_empty_task_send_to_start_s"] = {
                "p50": pct(floor, 0.5),
                "p95": pct(floor, 0.95),
                "mean": round(statistics.fmean(floor), 5),
            }
            fr = first_result(s, url, args.first_items)
        finally:
            for p in reversed(procs):
                p.stop()
    per10k = 10_000 / args.items
    result = {
        "benchmark": "batch_overhead",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        "params": PARAMS,
        "window": args.window,
        "enhance_processes": args.concurrency,
        "uploaders": UPLOADERS,
        "files_per_request": PER_REQUEST,
        "throughput": tp,
        "goal_items_per_s": 100,
        "overhead": oh,
        "goal_p50_overhead_s": 0.010,
        "memory_per_10k_items": {
            "gateway_pss_mib": round((mem1["gateway_pss"] - mem0["gateway_pss"]) * per10k / 2**20, 1),
            "redis_used_mib": round((mem1["redis_used"] - mem0["redis_used"]) * per10k / 2**20, 1),
        },
        "time_to_first_result_s": fr,
        # Baseline in the same run: overhead["empty_request_round_trip_s"].
        "items_pages": pages,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
