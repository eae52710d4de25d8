"""A crowd at the gateway: open progress streams and long polls held while people work.

For each gateway design, on the local stack (Redis, one enhance worker, gunicorn, nginx):

- ``--streams`` SSE streams (``GET /api/v1/batches/{id}/events`` on open batches) and
  ``--waits`` long polls (``GET /api/v1/jobs/{id}?wait=60`` on items of paused batches,
  asked again as each answers) are opened over ``--keys`` API keys and held for
  ``--seconds``; every stream must get its snapshot;
- meanwhile ``--users`` simulated people upload photos and poll jobs as in
  ``bench/stack_memory.py`` (20 % uploads, 80 % status reads, 0.5-1.5 s think time),
  someone uploads a 12 MP phone photo every ``--phone-every`` seconds (the gateway's
  CPU-heavy case: header, hash and store 5 MB), and ``/healthz`` is asked every 0.1 s;
- the gateway's memory (RSS of its process trees) is read before the crowd and once it
  is all connected: the difference per held connection is reported.

Designs: ``gthread`` (what the gateway was: 2 processes x 8 threads, a thread per held
connection), ``gevent`` (the whole gateway on gevent workers, 2 processes), ``split``
(the API on gthread, 2 x 8, and held connections on a gevent server of 1 process, nginx
routing between them). Writes bench/results/crowd.json.

    python -m bench.crowd [--designs gevent,split,gthread --streams 1000 --waits 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import redis as redis_lib
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import machine_info  # noqa: E402
from bench.stack_memory import Users, pct  # noqa: E402
from testbed.stack import kadr_env, start_gateway, start_nginx, start_redis, start_worker, stop_on_sigterm, wait_for  # noqa: E402
from testbed.weights import make_random_weights  # noqa: E402

MIB = 2**20
GOALS = {"healthz_p99_s": 0.050, "upload_p95_s": 0.150}


def tree_rss(pid: int) -> int:
    try:
        p = psutil.Process(pid)
        return sum(q.memory_info().rss for q in [p] + p.children(recursive=True))
    except psutil.NoSuchProcess:
        return 0


def master_and_workers_mib(pid: int) -> dict:
    """RSS of a gunicorn master and of each of its workers (a deployment with one worker
    holds the master plus one of these)."""
    try:
        p = psutil.Process(pid)
        return {
            "master": round(p.memory_info().rss / MIB, 1),
            "workers": [round(c.memory_info().rss / MIB, 1) for c in p.children()],
        }
    except psutil.NoSuchProcess:
        return {}


class Crowd:
    """The held connections, on one asyncio loop in a thread of their own."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.status: dict[str, int] = {}
        self.snapshots = self.connected = 0
        self.wait_answers: list[float] = []

    def _count(self, key: str) -> None:
        self.status[key] = self.status.get(key, 0) + 1

    async def _request(self, path: str, key: str):
        reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: kadr\r\nAuthorization: Bearer {key}\r\nAccept: */*\r\n\r\n".encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        return reader, writer, int(head.split(b" ", 2)[1]), head

    async def stream(self, path: str, key: str, until: float) -> None:
        writer = None
        try:
            reader, writer, code, _ = await asyncio.wait_for(self._request(path, key), 60)
            self._count(str(code))
            if code != 200:
                return
            self.connected += 1
            got = b""
            while b"event: progress" not in got:
                got += await asyncio.wait_for(reader.read(4096), 60)
            self.snapshots += 1
            while time.monotonic() < until:
                if not await asyncio.wait_for(reader.read(4096), until - time.monotonic() + 30):
                    if time.monotonic() < until - 5:
                        self._count("ended_early")  # the server closed a stream it should hold
                    break
        except Exception as e:
            self._count(type(e).__name__)
        finally:
            if writer is not None:
                writer.close()

    async def waiter(self, path: str, key: str, until: float) -> None:
        while time.monotonic() < until:
            writer = None
            t0 = time.monotonic()
            try:
                reader, writer, code, head = await asyncio.wait_for(self._request(path, key), 90)
                self._count(str(code))
                length = [int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")]
                if length:
                    await reader.readexactly(length[0])
                self.wait_answers.append(time.monotonic() - t0)
                if code != 200:
                    await asyncio.sleep(5)
            except Exception as e:
                self._count(type(e).__name__)
                await asyncio.sleep(1)
            finally:
                if writer is not None:
                    writer.close()

    def run(self, streams: list[tuple[str, str]], waits: list[tuple[str, str]], seconds: float) -> None:
        async def main():
            until = time.monotonic() + seconds
            tasks = []
            for i, (path, key) in enumerate(streams):
                tasks.append(asyncio.create_task(self.stream(path, key, until)))
                if i % 50 == 49:
                    await asyncio.sleep(0.05)  # a crowd arrives over a few seconds, not in one packet
            for i, (path, key) in enumerate(waits):
                tasks.append(asyncio.create_task(self.waiter(path, key, until)))
                if i % 50 == 49:
                    await asyncio.sleep(0.05)
            await asyncio.gather(*tasks)

        asyncio.run(main())


def healthz_probe(url: str, stop: threading.Event, out: list[float], errors: dict) -> None:
    s = requests.Session()
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            r = s.get(url + "/healthz", timeout=30)
            out.append(time.perf_counter() - t0)
            if r.status_code != 200:
                errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
        except requests.RequestException as e:
            errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
        time.sleep(0.1)


def nginx_times(log: Path, uri: str) -> dict:
    """The same requests as nginx timed them (its JSON access log): tells a slow answer of
    the gateway from a late measuring thread, which shares the bench process and the two
    cores with the crowd it drives."""
    total: list[float] = []
    upstream: list[float] = []
    for line in log.read_text(errors="replace").splitlines():
        if f'"uri":"{uri}"' not in line:
            continue
        try:
            rec = json.loads(line[line.index("{") :])
            total.append(float(rec["seconds"]))
            upstream.append(float(rec["upstream_seconds"]))
        except ValueError:  # not a JSON line, or no upstream answer ("-")
            continue
    return {
        "n": len(total),
        "p50_s": pct(total, 0.5),
        "p99_s": pct(total, 0.99),
        "max_s": max(total, default=None),
        "upstream_p99_s": pct(upstream, 0.99),
        "upstream_max_s": max(upstream, default=None),
    }


def phone_uploads(
    url: str, key: str, data: bytes, stop: threading.Event, out: list[float], errors: dict, every: float
) -> None:
    """A 12 MP phone photo every ``every`` seconds: the gateway reads its header, hashes
    and stores 5 MB each time, work that holds a process's CPU for a while."""
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {key}"
    while not stop.wait(every):
        t0 = time.perf_counter()
        try:
            r = s.post(
                f"{url}/api/v1/enhance",
                files={"file": ("phone.jpg", data)},
                data={"quality": "fast", "upscale": "1", "max_faces": "0"},
                timeout=60,
            )
            out.append(time.perf_counter() - t0)
            if r.status_code != 202:
                errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
        except requests.RequestException as e:
            errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1


def setup_keys(env: dict, n: int) -> list[str]:
    from services.store.apikeys import create_key

    r = redis_lib.Redis.from_url(env["KADR_REDIS_URL"], decode_responses=True)
    return [create_key(r, f"crowd-{i}")[0] for i in range(n)]


def targets(url: str, keys: list[str], streams: int, waits: int) -> tuple[list, list]:
    """An open batch per key to stream, and pending items of a paused batch per key to wait on."""
    from testbed.photos import flat_png

    sse, polls = [], []
    for i, key in enumerate(keys):
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {key}"
        open_batch = s.post(f"{url}/api/v1/batches", json={"params": {"quality": "fast", "upscale": 1}}).json()["id"]
        paused = s.post(f"{url}/api/v1/batches", json={"params": {"quality": "fast", "upscale": 1}}).json()["id"]
        s.post(f"{url}/api/v1/batches/{paused}/pause").raise_for_status()
        r = s.post(f"{url}/api/v1/batches/{paused}/items", files=[("files", ("w.png", flat_png(seed=i)))])
        r.raise_for_status()
        item = r.json()["accepted"][0]["id"]
        n_s = streams // len(keys) + (i < streams % len(keys))
        n_w = waits // len(keys) + (i < waits % len(keys))
        sse += [(f"/api/v1/batches/{open_batch}/events", key)] * n_s
        polls += [(f"/api/v1/jobs/{item}?wait=60", key)] * n_w
    return sse, polls


def run_design(design: str, env: dict, logs: Path, args) -> dict:
    procs, gateways = [], []
    try:
        if design == "split":
            api, api_url = start_gateway(env, logs, worker_class="gthread")
            held, held_url = start_gateway(env, logs, worker_class="gevent", workers=1)
            procs += [api, held]
            gateways = [api, held]
            ngx, url = start_nginx(
                api_url.removeprefix("http://"),
                logs,
                rate="100000r/s",
                burst=100000,
                stream_upstream=held_url.removeprefix("http://"),
            )
        else:
            gw, gw_url = start_gateway(env, logs, worker_class=design)
            procs.append(gw)
            gateways = [gw]
            ngx, url = start_nginx(gw_url.removeprefix("http://"), logs, rate="100000r/s", burst=100000)
        procs.append(ngx)
        wait_for(lambda: requests.get(url + "/readyz", timeout=5).status_code == 200, 180, "the stack")
        keys = setup_keys(env, args.keys)
        sse, polls = targets(url, keys, args.streams, args.waits)
        # Warm: every gateway process has served a request and made its connections.
        for _ in range(20):
            requests.get(url + "/api/v1/jobs", headers={"Authorization": f"Bearer {keys[0]}"}, timeout=30)
        rss_before = sum(tree_rss(g.pid) for g in gateways)
        procs_before = [master_and_workers_mib(g.pid) for g in gateways]
        host, port = url.removeprefix("http://").split(":")
        crowd = Crowd(host, int(port))
        crowd_thread = threading.Thread(target=crowd.run, args=(sse, polls, args.seconds), daemon=True)
        crowd_thread.start()
        held_target = len(sse)
        try:
            wait_for(
                lambda: crowd.connected + sum(v for k, v in crowd.status.items() if k != "200") >= held_target,
                120,
                "the streams to open",
            )
        except TimeoutError:  # a thread per connection: most never get one (what gthread measures)
            pass
        r = redis_lib.Redis.from_url(env["KADR_REDIS_URL"], decode_responses=True)
        try:  # the long polls too, as the gateway counts its holds
            wait_for(
                lambda: sum(r.zcard(k) for k in r.scan_iter("kadr:holds:*")) >= crowd.connected + len(polls),
                60,
                "the long polls to be held",
            )
        except TimeoutError:  # a thread per connection: most never get one (what gthread measures)
            pass
        rss_held = sum(tree_rss(g.pid) for g in gateways)
        procs_held = [master_and_workers_mib(g.pid) for g in gateways]
        stop = threading.Event()
        health: list[float] = []
        phone: list[float] = []
        health_err: dict[str, int] = {}
        phone_err: dict[str, int] = {}
        side = [
            threading.Thread(target=healthz_probe, args=(url, stop, health, health_err), daemon=True),
            threading.Thread(
                target=phone_uploads,
                args=(url, keys[1], args.phone_photo, stop, phone, phone_err, args.phone_every),
                daemon=True,
            ),
        ]
        for t in side:
            t.start()
        users = Users(url, keys[0], args.users, max(10.0, args.seconds - 20))
        users.run()
        stop.set()
        for t in side:
            t.join()
        crowd_thread.join(args.seconds + 120)
        held_n = crowd.connected + len(polls)
        return {
            "design": design,
            "streams": len(sse),
            "waits": len(polls),
            "keys": len(keys),
            "users": args.users,
            "seconds": args.seconds,
            "streams_connected": crowd.connected,
            "snapshots": crowd.snapshots,
            "held_status": crowd.status,
            "wait_answers": len(crowd.wait_answers),
            "wait_answer_p50_s": pct(crowd.wait_answers, 0.5),
            "healthz": {
                "n": len(health),
                "p50_s": pct(health, 0.5),
                "p99_s": pct(health, 0.99),
                "max_s": round(max(health), 4) if health else None,
                "errors": health_err,
            },
            # Baseline for the client's figures above: nginx's own timing of the same requests.
            "healthz_at_nginx": nginx_times(ngx.log_path, "/healthz"),
            "upload": {"n": len(users.uploads), "p50_s": pct(users.uploads, 0.5), "p95_s": pct(users.uploads, 0.95)},
            "phone_upload_12mp": {
                "n": len(phone),
                "p50_s": pct(phone, 0.5),
                "p95_s": pct(phone, 0.95),
                "errors": phone_err,
            },
            "status_read": {"n": len(users.polls), "p50_s": pct(users.polls, 0.5), "p95_s": pct(users.polls, 0.95)},
            "users_status": users.status,
            "gateway_rss_mib": {"before": round(rss_before / MIB, 1), "held": round(rss_held / MIB, 1)},
            "gateway_processes_mib": {"before": procs_before, "held": procs_held},
            "gateway_kib_per_held_connection": round((rss_held - rss_before) / 1024 / max(1, held_n), 1),
        }
    finally:
        for p in reversed(procs):
            p.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--designs", default="gevent,split,gthread")
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--waits", type=int, default=1000)
    ap.add_argument("--keys", type=int, default=40)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/crowd.json")
    ap.add_argument("--phone-every", type=float, default=5.0, help="seconds between 12 MP uploads")
    ap.add_argument("--logs", type=Path, help="keep the processes' logs here (default: thrown away)")
    args = ap.parse_args()
    stop_on_sigterm()
    from testbed import photos

    args.phone_photo = photos.encode(photos.photo(*photos.SIZES["12mp"]), "jpeg")
    results = []
    with tempfile.TemporaryDirectory(prefix="kadr-bench-crowd-") as t:
        tmp = Path(t)
        models = tmp / "models"
        make_random_weights(models)
        redis_proc, redis_url = start_redis(tmp / "redis")
        env = kadr_env(
            redis_url=redis_url,
            storage_dir=tmp / "blobs",
            models_dir=models,
            KADR_REQUIRED_QUEUES='["enhance"]',
            KADR_SSE_MAX_SECONDS=str(args.seconds + 60),
        )
        worker = start_worker("enhance", env, tmp / "logs")
        try:
            for design in args.designs.split(","):
                # Each design starts from an empty store and queue (the last one's uploads
                # would otherwise still be waiting: one worker cannot keep up with 50 people).
                redis_lib.Redis.from_url(redis_url).flushall()
                res = run_design(design, env, args.logs or tmp / "logs", args)
                res["goals_met"] = {
                    "healthz_p99_s": (res["healthz"]["p99_s"] or 1e9) < GOALS["healthz_p99_s"],
                    "upload_p95_s": (res["upload"]["p95_s"] or 1e9) < GOALS["upload_p95_s"],
                }
                print(json.dumps(res), flush=True)
                results.append(res)
        finally:
            worker.stop()
            redis_proc.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"machine": machine_info(), "goals": GOALS, "results": results, "when": time.strftime("%Y-%m-%d %H:%M:%S")},
            indent=1,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
