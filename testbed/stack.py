"""Real processes for tests: redis-server, Celery workers, gunicorn, nginx on free ports.

Each process runs in its own process group with its output in a log file under the
test's directory, so a failing test can point at the log and a stop never leaves
grandchildren (Celery pool children, gunicorn workers) behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status_kib(pid: int, field: str) -> int:
    """A field of /proc/PID/status in KiB (VmRSS, VmHWM: the peak since the process
    started or since "5" was written to its clear_refs)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def wait_for(predicate: Callable[..., Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # keep polling: the thing may not be up yet
            last_exc = e
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_exc!r})" if last_exc else "")
    )


def binary(name: str) -> str:
    for cand in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if cand and os.path.exists(cand):
            return cand
    raise FileNotFoundError(f"{name} is not installed (run infra/local/install.sh)")


def stop_on_sigterm() -> None:
    """Turn SIGTERM and SIGHUP into SystemExit, so a script's ``finally`` stops the
    processes it started: killed plainly, a benchmark left its stack running (a worker
    went on taking both cores through the next runs)."""

    def leave(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGHUP, leave)


class Proc:
    def __init__(self, name: str, cmd: list[str], *, log_dir: Path, env: dict | None = None, cwd: Path = ROOT):
        self.name, self.cmd = name, cmd
        self.node = ""  # a worker's Celery node name (start_worker)
        self.metrics_url = ""  # a worker's own /metrics (start_worker)
        self.log_path = Path(log_dir) / f"{name}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        full_env = {**os.environ, **(env or {})}
        self.p = subprocess.Popen(
            cmd, cwd=cwd, env=full_env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.p.pid

    def alive(self) -> bool:
        return self.p.poll() is None

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.p.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, timeout: float = 15) -> None:
        if self.alive():
            self.signal_group(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of the group (pool children, orphans) goes too.
        self.signal_group(signal.SIGKILL)
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


def start_redis(workdir: Path, port: int | None = None) -> tuple[Proc, str]:
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [
        binary("redis-server"),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(workdir),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--maxmemory",
        "512mb",
        "--maxmemory-policy",
        "noeviction",
        "--daemonize",
        "no",
    ]
    proc = Proc(f"redis-{port}", cmd, log_dir=workdir)
    url = f"redis://127.0.0.1:{port}/0"

    def ping():
        import redis

        return redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()

    wait_for(ping, 20, "redis-server to answer PING")
    return proc, url


def kadr_env(*, redis_url: str, storage_dir: Path, models_dir: Path, **extra: str) -> dict[str, str]:
    base = redis_url.rsplit("/", 1)[0]
    env = {
        "KADR_REDIS_URL": redis_url,
        "KADR_CACHE_REDIS_URL": f"{base}/1",
        "KADR_STORAGE_DIR": str(storage_dir),
        "KADR_MODELS_DIR": str(models_dir),
        "KADR_WORKER_HEARTBEAT_SECONDS": "0.5",
        "PYTHONUNBUFFERED": "1",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


# As deployed (infra/local/Procfile): the camera worker keeps its frame rings in its own
# process, beside the reader threads, so it runs the threads pool.
WORKER_POOLS = {"camera": ("threads", 2)}


def start_worker(
    service: str, env: dict, log_dir: Path, *, name: str | None = None, concurrency: int | None = None
) -> Proc:
    name = name or f"{service}-{free_port()}"
    pool, default_concurrency = WORKER_POOLS.get(service, ("prefork", 1))
    cmd = [
        PY,
        "-m",
        "celery",
        "-A",
        f"services.{service}.tasks",
        "worker",
        "-Q",
        service,
        "-n",
        f"{name}@%h",
        "--pool",
        pool,
        "-c",
        str(concurrency or default_concurrency),
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
    ]
    # Its own metrics port and sample directory, as each worker service gets in compose.
    port = free_port()
    metrics_dir = Path(log_dir) / f"metrics-{name}"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env = {**env, "KADR_METRICS_PORT": str(port), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    proc = Proc(name, cmd, log_dir=log_dir, env=env)
    proc.node = f"{name}@{socket.gethostname()}"  # for Celery remote control
    proc.metrics_url = f"http://127.0.0.1:{port}/metrics"
    return proc


def start_gateway(
    env: dict, log_dir: Path, *, port: int | None = None, workers: int = 2, worker_class: str | None = None
) -> tuple[Proc, str]:
    port = port or free_port()
    genv = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": str(workers)}
    if worker_class:
        genv["GUNICORN_WORKER_CLASS"] = worker_class
    cmd = [PY, "-m", "gunicorn", "-c", str(ROOT / "gateway/gunicorn.conf.py"), "gateway.wsgi:app"]
    proc = Proc(f"gateway-{port}", cmd, log_dir=log_dir, env=genv)
    url = f"http://127.0.0.1:{port}"
    import requests

    wait_for(lambda: requests.get(url + "/healthz", timeout=1).ok, 30, "gunicorn /healthz")
    return proc, url


def start_nginx(
    upstream: str,
    log_dir: Path,
    *,
    port: int | None = None,
    rate: str = "20r/s",
    burst: int = 40,
    max_body_bytes: int | None = None,
    stream_upstream: str | None = None,
) -> tuple[Proc, str]:
    port = port or free_port()
    prefix = Path(log_dir) / f"nginx-{port}"
    conf = prefix / "nginx.conf"
    args = [
        PY,
        str(ROOT / "infra/nginx/render.py"),
        "--profile",
        "local",
        "--prefix",
        str(prefix),
        "--listen",
        f"127.0.0.1:{port}",
        "--upstream",
        upstream,
        "--out",
        str(conf),
        "--rate",
        rate,
        "--burst",
        str(burst),
    ]
    if max_body_bytes:
        args += ["--max-body-bytes", str(max_body_bytes)]
    if stream_upstream:
        args += ["--stream-upstream", stream_upstream]
    subprocess.run(args, check=True)
    cmd = [binary("nginx"), "-c", str(conf), "-p", str(prefix), "-g", "daemon off;"]
    proc = Proc(f"nginx-{port}", cmd, log_dir=log_dir)
    url = f"http://127.0.0.1:{port}"
    import requests

    wait_for(lambda: requests.get(url + "/healthz", timeout=1).ok, 20, "nginx → gateway /healthz")
    return proc, url


@contextlib.contextmanager
def gateway_behind_nginx(env: dict, log_dir: Path, *, rate: str = "20r/s", burst: int = 40):
    """One gunicorn process on ``env`` behind nginx, no worker; yields (nginx URL, gateway
    URL) and stops both."""
    procs = []
    try:
        gw, gurl = start_gateway(env, log_dir, workers=1)
        procs.append(gw)
        ngx, url = start_nginx(gurl.removeprefix("http://"), log_dir, rate=rate, burst=burst)
        procs.append(ngx)
        yield url, gurl
    finally:
        for p in reversed(procs):
            p.stop()


def scrape(url: str) -> dict[str, list[tuple[dict, float]]]:
    """A Prometheus endpoint's samples by name: ``{name: [(labels, value), ...]}``."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    resp = requests.get(url, timeout=10)
    resp.raise_for_status()
    out: dict[str, list[tuple[dict, float]]] = {}
    for fam in text_string_to_metric_families(resp.text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def sample(samples: dict, name: str, **labels) -> float | None:
    """The value of the one sample of ``name`` whose labels include ``labels``; summed
    over the rest (e.g. pids) when several match; None when none does."""
    hits = [v for lab, v in samples.get(name, []) if all(lab.get(k) == v2 for k, v2 in labels.items())]
    return sum(hits) if hits else None


def start_ops(kind: str, env: dict, log_dir: Path, **settings: str) -> tuple[Proc, str]:
    """The exporter or the autoscaler (``kind``), on a free port; returns its /metrics URL."""
    port = free_port()
    var = {
        "exporter": "KADR_EXPORTER_PORT",
        "autoscaler": "KADR_AUTOSCALER_METRICS_PORT",
        "janitor": "KADR_JANITOR_PORT",
    }[kind]
    proc = Proc(
        f"{kind}-{port}", [PY, "-m", f"services.ops.{kind}"], log_dir=log_dir, env={**env, var: str(port), **settings}
    )
    url = f"http://127.0.0.1:{port}/metrics"
    import requests

    wait_for(lambda: requests.get(url, timeout=2).ok, 30, f"{kind} /metrics")
    return proc, url


def start_prometheus(targets: dict[str, str], base: Path, *, interval: str = "1s") -> tuple[Proc, str]:
    """Debian's prometheus with infra/prometheus/prometheus.yml, its jobs' targets given
    by ``targets`` (job → host:port) and the intervals shortened for a test."""
    import requests

    port = free_port()
    base.mkdir(parents=True, exist_ok=True)
    path = base / "prometheus.yml"
    subprocess.run(
        [
            PY,
            str(ROOT / "infra/prometheus/render.py"),
            "--out",
            str(path),
            "--listen",
            f"127.0.0.1:{port}",
            "--interval",
            interval,
            *[f"--target={job}={hp}" for job, hp in targets.items()],
        ],
        check=True,
    )
    proc = Proc(
        f"prometheus-{port}",
        [
            binary("prometheus"),
            f"--config.file={path}",
            f"--storage.tsdb.path={base / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        log_dir=base,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: requests.get(url + "/-/ready", timeout=2).ok, 60, "prometheus /-/ready")
    return proc, url
