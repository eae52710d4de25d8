"""The /metrics endpoint of a Celery worker service (``KADR_METRICS_PORT``; 0 = off).

Tasks run in pool processes that come and go (prefork children, recycled or killed),
so they cannot each serve a port. prometheus_client's multiprocess mode lets every
process write its samples to files in ``PROMETHEUS_MULTIPROC_DIR`` and the worker's
main process serves the sum. That variable must be set before anything imports
prometheus_client, so it is the launcher's job (Procfile, compose, tests), one
directory per worker service, as for gunicorn. Without it (a ``--pool threads`` or
``solo`` worker, where tasks run in the main process) the main process's own registry
is served.

Besides the samples the tasks write, the endpoint reports the process tree's memory
(``kadr_worker_resident_memory_bytes`` and the biggest single pool process: the
footprint the autoscaler must fit before it adds one more) and whatever the service
adds with ``collectors`` (the camera buffers).
"""

from __future__ import annotations

import glob
import logging
import os
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

import psutil
from celery.signals import worker_init
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.runtime.settings import WorkerSettings

if TYPE_CHECKING:
    import threading
    from wsgiref.simple_server import WSGIServer

log = logging.getLogger("kadr.metrics")

_DB_PID = re.compile(r"_(\d+)\.db$")


def _pid_alive(pid: int) -> bool:
    try:
        return cast(bool, psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)  # psutil has no type information
    except psutil.NoSuchProcess:
        return False


def prune_dead_files(path: str, *, only_live_gauges: bool) -> list[str]:
    """Remove sample files of processes that are gone. During a run only the live gauges
    (their value means "now"); at start-up everything a previous run left, since a
    restarted service starts its counters from zero like any restarted process."""
    removed = []
    for f in glob.glob(os.path.join(path, "*.db")):
        name = os.path.basename(f)
        m = _DB_PID.search(name)
        if not m or (only_live_gauges and not name.startswith("gauge_live")):
            continue
        pid = int(m.group(1))
        if pid != os.getpid() and not _pid_alive(pid):
            try:
                os.remove(f)
                removed.append(name)
            except FileNotFoundError:
                pass
    return removed


class _LiveMultiProcessCollector(Collector):
    """MultiProcessCollector that forgets the live gauges of pool processes killed with
    SIGKILL, which never ran their exit hooks."""

    def __init__(self, path: str):
        self.path = path
        # prometheus_client leaves MultiProcessCollector unannotated (an untyped call); it is a Collector.
        self._inner: Collector = multiprocess.MultiProcessCollector(None, path)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Metric]:
        prune_dead_files(self.path, only_live_gauges=True)
        return self._inner.collect()


class ProcessTreeCollector(Collector):
    """RSS of the worker's main process and its pool processes (psutil, read at scrape)."""

    def __init__(self, service: str, root_pid: int | None = None):
        self.service = service
        self.root = psutil.Process(root_pid or os.getpid())

    def collect(self) -> Iterable[Metric]:
        procs = [self.root]
        try:
            procs += self.root.children(recursive=True)
        except psutil.Error:
            pass
        rss = {}
        for p in procs:
            try:
                rss[p.pid] = p.memory_info().rss
            except psutil.Error:
                continue  # exited between listing and reading
        pool = [v for pid, v in rss.items() if pid != self.root.pid] or list(rss.values())
        labels = [self.service]
        total = GaugeMetricFamily(
            "kadr_worker_resident_memory_bytes",
            "Resident memory of the worker and its pool processes",
            labels=["service"],
        )
        total.add_metric(labels, sum(rss.values()))
        biggest = GaugeMetricFamily(
            "kadr_worker_process_max_resident_memory_bytes",
            "Resident memory of the biggest process that runs tasks",
            labels=["service"],
        )
        biggest.add_metric(labels, max(pool, default=0))
        count = GaugeMetricFamily(
            "kadr_worker_processes", "Processes of the worker (main and pool)", labels=["service"]
        )
        count.add_metric(labels, len(rss))
        return [total, biggest, count]


def build_registry(service: str, collectors: Iterable[Collector] = ()) -> CollectorRegistry:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        reg = CollectorRegistry()
        reg.register(_LiveMultiProcessCollector(path))
    else:
        reg = REGISTRY
    reg.register(ProcessTreeCollector(service))
    for c in collectors:
        reg.register(c)
    return reg


def serve(
    settings: WorkerSettings, service: str, collectors: Iterable[Collector] = ()
) -> tuple[WSGIServer, threading.Thread]:
    """Start the endpoint in this process (a daemon thread); returns (server, thread)."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        stale = prune_dead_files(path, only_live_gauges=False)
        if stale:
            log.info("removed metric files of a previous run", extra={"files": len(stale)})
    reg = build_registry(service, collectors)
    server, thread = start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=reg)
    log.info(
        "metrics endpoint listening",
        extra={"host": settings.metrics_host, "port": settings.metrics_port, "multiprocess": bool(path)},
    )
    return server, thread


def install(settings: WorkerSettings, service: str, collectors: Callable[[], Iterable[Collector]] = lambda: ()) -> None:
    """Serve the endpoint from the worker's main process once Celery starts it (before
    the pool forks: the children inherit nothing but the closed-over settings)."""
    if not settings.metrics_port:
        return

    def _start(**_: Any) -> None:
        serve(settings, service, collectors())

    worker_init.connect(_start, weak=False)
