"""The autoscaler: every ``KADR_AUTOSCALE_INTERVAL_SECONDS`` it reads each managed
queue and the host, asks ``policy.decide`` and, unless in dry-run mode, grows or
shrinks one worker's pool through ``actuator.CeleryPools``.

``python -m services.ops.autoscaler``. Inputs all come from what kadr already keeps,
so it needs no Prometheus: queue lengths from Redis, pool processes per worker from
Celery ``inspect``, busy processes from the job store's running set, recent task
times from ``services.store.task_stats``, each process's RSS from its heartbeat, host
CPU and RAM from psutil, GPU memory from NVML. Every decision is one JSON log line
with its reason and numbers, and a sample of ``kadr_autoscaler_decisions_total``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import psutil
import redis
from prometheus_client import Counter, Gauge, start_http_server

from services.platform.celery_app import create_celery, queue_length
from services.store import task_stats
from services.store.connection import connect
from services.store.workers import live_workers

from .actuator import CeleryPools, ControlError, NodePool
from .observe import Nvml, busy_worker_ids, free_gpu_bytes, workers_by_queue
from .policy import Decision, HostState, QueueState, Rules, decide
from .settings import OpsSettings, QueueLimits

log = logging.getLogger("kadr.ops.autoscaler")

DECISIONS = Counter("kadr_autoscaler_decisions_total", "Autoscaler decisions", ["queue", "action", "reason"])
PROCESSES = Gauge("kadr_autoscaler_processes", "Pool processes consuming the queue, as last surveyed", ["queue"])
ERRORS = Counter("kadr_autoscaler_errors_total", "Survey or remote-control failures", ["stage"])
DRY_RUN = Gauge("kadr_autoscaler_dry_run", "1 when decisions are logged but not carried out")


def rules_for(s: OpsSettings, limits: QueueLimits) -> Rules:
    return Rules(
        min_processes=limits.min,
        max_processes=limits.max,
        default_footprint_bytes=limits.footprint_bytes,
        cpu_high_percent=s.autoscale_cpu_high_percent,
        cpu_low_percent=s.autoscale_cpu_low_percent,
        backlog_per_process=s.autoscale_backlog_per_process,
        task_seconds_high=s.autoscale_task_seconds_high,
        cooldown_seconds=s.autoscale_cooldown_seconds,
        ram_reserve_bytes=s.autoscale_ram_reserve_bytes,
        gpu_reserve_bytes=s.autoscale_gpu_reserve_bytes,
    )


def _node_busy(node: NodePool, busy_ids: set[str]) -> int:
    return sum(f"{node.host}:{pid}" in busy_ids for pid in node.pids)


def add_declared_queues(nodes: list[NodePool], heartbeats: list[dict[str, Any]]) -> None:
    """A worker serves the queues its processes declare in their heartbeats, even while
    its consumer is paused (``cancel_consumer``, an operator draining it): Celery's
    ``active_queues`` alone would make it vanish from the queue's pool count."""
    for n in nodes:
        pids = set(n.pids) | ({n.main_pid} if n.main_pid else set())
        for hb in heartbeats:
            if hb.get("host") == n.host and hb.get("pid") in pids:
                n.queues = sorted(set(n.queues) | set(hb.get("queues") or []))


class Autoscaler:
    def __init__(
        self,
        s: OpsSettings,
        r: redis.Redis,
        pools: CeleryPools,
        nvml: Nvml | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.s, self.r, self.pools, self.clock = s, r, pools, clock
        self.nvml = nvml or Nvml()
        self.last_change: dict[str, float] = {}
        psutil.cpu_percent(None)  # primes the counter: the next call measures since now
        DRY_RUN.set(1 if s.autoscale_dry_run else 0)

    def observe(
        self,
        queue: str,
        limits: QueueLimits,
        nodes: list[NodePool],
        busy_ids: set[str],
        workers: dict[str, dict[str, Any]],
        host: HostState,
    ) -> tuple[QueueState, HostState]:
        mine = [n for n in nodes if queue in n.queues]
        w = workers.get(queue, {})
        q = QueueState(
            queue=queue,
            backlog=queue_length(self.r, queue),
            processes=sum(n.processes for n in mine),
            busy=sum(_node_busy(n, busy_ids) for n in mine),
            avg_task_seconds=task_stats.recent_mean(self.r, queue),
            footprint_bytes=w.get("max_rss") or None,
            gpu_footprint_bytes=w.get("max_cuda"),
        )
        if limits.memory_budget_bytes is not None:
            left = limits.memory_budget_bytes - int(w.get("total_rss") or 0)
            host = HostState(host.cpu_percent, min(host.free_ram_bytes, left), host.free_gpu_bytes)
        return q, host

    def tick(self) -> list[Decision]:
        try:
            nodes = self.pools.survey()
            add_declared_queues(nodes, live_workers(self.r))
            busy_ids = busy_worker_ids(self.r)
            workers = workers_by_queue(self.r, list(self.s.autoscale))
        except (redis.RedisError, OSError) as e:
            ERRORS.labels(stage="survey").inc()
            log.warning("survey failed; no decision this round: %s", e)
            return []
        host = HostState(
            cpu_percent=psutil.cpu_percent(None),
            free_ram_bytes=psutil.virtual_memory().available,
            free_gpu_bytes=free_gpu_bytes(self.nvml),
        )
        out = []
        for queue, limits in self.s.autoscale.items():
            q, qhost = self.observe(queue, limits, nodes, busy_ids, workers, host)
            PROCESSES.labels(queue=queue).set(q.processes)
            since = self.clock() - self.last_change[queue] if queue in self.last_change else None
            d = decide(q, qhost, rules_for(self.s, limits), since_last_change=since)
            mine = [n for n in nodes if queue in n.queues]
            if d.action != "hold" and not mine:
                d = Decision(queue, "hold", 0, "no_worker", "no live worker consumes this queue")
            elif d.action != "hold" and not self.s.autoscale_dry_run:
                d = self._act(d, mine, busy_ids)
            DECISIONS.labels(queue=queue, action=d.action, reason=d.reason).inc()
            level = logging.INFO if d.action != "hold" or d.reason not in ("steady", "at_max") else logging.DEBUG
            log.log(
                level,
                "autoscale %s %s: %s",
                queue,
                d.action,
                d.reason,
                extra={
                    "queue": queue,
                    "action": d.action,
                    "delta": d.delta,
                    "reason": d.reason,
                    "detail": d.detail,
                    "dry_run": self.s.autoscale_dry_run,
                    "state": asdict(q),
                    "host": asdict(qhost),
                },
            )
            out.append(d)
        return out

    def _act(self, d: Decision, nodes: list[NodePool], busy_ids: set[str]) -> Decision:
        if d.action == "grow":
            node = min(nodes, key=lambda n: n.processes)
            call = self.pools.grow
        else:
            node = max(nodes, key=lambda n: n.processes - _node_busy(n, busy_ids))
            call = self.pools.shrink
        try:
            call(node.node, abs(d.delta))
        except ControlError as e:
            ERRORS.labels(stage=d.action).inc()
            return Decision(d.queue, "hold", 0, f"{d.action}_failed", str(e)[:300])
        self.last_change[d.queue] = self.clock()
        return Decision(d.queue, d.action, d.delta, d.reason, f"{d.detail} ({node.node})")


def main() -> None:
    from services.platform.logs import setup_logging

    s = OpsSettings()
    setup_logging(s.log_level, service="autoscaler")
    if s.autoscaler_metrics_port:
        start_http_server(s.autoscaler_metrics_port, addr=s.exporter_host)
    scaler = Autoscaler(
        s,
        connect(s.redis_url),
        CeleryPools(create_celery(s, name="kadr-autoscaler"), timeout=s.control_timeout_seconds),
    )
    log.info(
        "autoscaler started",
        extra={"queues": {q: lim.model_dump() for q, lim in s.autoscale.items()}, "dry_run": s.autoscale_dry_run},
    )
    stop = threading.Event()
    try:
        while not stop.is_set():
            scaler.tick()
            stop.wait(s.autoscale_interval_seconds)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
