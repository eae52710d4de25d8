"""The janitor: retention rounds over the blob store and the outbox's deliveries, with
their own metrics and health.

``python -m services.ops.janitor`` runs ``Retention.sweep`` every
``retention_interval_seconds`` (under a Redis lock, so a second janitor waits its turn),
publishes each key's usage for ``GET /api/v1/usage``, delivers completion callbacks and
camera webhooks from the outbox every second (services/upkeep/delivery.py; claims are
leased, so two janitors never send one twice at once), and serves on
``KADR_JANITOR_PORT`` (9105):

- ``/metrics``: what it removed (by kind and reason), what the store holds per kind, the
  budget, the disk's free space against its floor, when a round last succeeded;
- ``/healthz``: 200 while rounds succeed, 503 when none has for three intervals (Redis
  away, the store unreadable), so an orchestrator restarts a janitor that is stuck.

It runs apart from the ML workers: an operator looking for what deletes files finds it
by name, and retention keeps running while a worker is busy or restarting.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from services.contracts import redis_keys
from services.platform.logs import setup_logging
from services.store import usage as usage_store
from services.store.blobs import open_store
from services.store.connection import connect
from services.store.jobs import JobStore
from services.upkeep.delivery import Deliverer
from services.upkeep.retention import KINDS, REASONS, Retention, Round, usage_by_owner

from .settings import OpsSettings

log = logging.getLogger("kadr.ops.janitor")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.removed = Counter(
            "kadr_retention_removed_total", "Things removed by retention", ["kind", "reason"], registry=r
        )
        self.removed_bytes = Counter(
            "kadr_retention_removed_bytes_total", "Bytes removed by retention", ["kind", "reason"], registry=r
        )
        self.stored = Gauge(
            "kadr_storage_bytes", "Bytes in the blob store per kind, as last surveyed", ["kind"], registry=r
        )
        self.items = Gauge(
            "kadr_storage_items", "Things (photos, batches, videos, events) stored per kind", ["kind"], registry=r
        )
        self.budget = Gauge("kadr_storage_budget_bytes", "The store's budget (0: none)", registry=r)
        self.over = Gauge("kadr_storage_over_budget", "1 when live work alone exceeds the budget", registry=r)
        self.free = Gauge("kadr_storage_free_bytes", "Free bytes on the blob store's disk", registry=r)
        self.floor = Gauge("kadr_storage_free_floor_bytes", "Free space below which uploads get 507", registry=r)
        self.last_ok = Gauge(
            "kadr_retention_last_success_timestamp_seconds", "When a retention round last completed", registry=r
        )
        self.seconds = Gauge("kadr_retention_round_seconds", "How long the last round took", registry=r)
        self.failures = Counter("kadr_retention_round_failures_total", "Rounds that failed", registry=r)
        self.callbacks = Counter(
            "kadr_callbacks_total", "Callback and webhook attempts by outcome", ["subject", "outcome"], registry=r
        )
        self.outbox = Gauge("kadr_callbacks_pending", "Deliveries waiting in the outbox", registry=r)
        # Every series from the start: a panel or rate() over removals shows 0, not "no data".
        for kind in KINDS:
            for reason in REASONS:
                self.removed.labels(kind=kind, reason=reason)
                self.removed_bytes.labels(kind=kind, reason=reason)
        for subject in ("job", "batch", "event"):
            for outcome in ("delivered", "failed", "retry"):
                self.callbacks.labels(subject=subject, outcome=outcome)

    def record(self, rnd: Round, *, budget: int, free: int | None, floor: int) -> None:
        for item, reason in rnd.removed:
            self.removed.labels(kind=item.kind, reason=reason).inc()
            self.removed_bytes.labels(kind=item.kind, reason=reason).inc(item.bytes)
        for kind, t in rnd.totals().items():
            self.stored.labels(kind=kind).set(t["bytes"])
            self.items.labels(kind=kind).set(t["count"])
        self.budget.set(budget)
        self.over.set(int(rnd.over_budget))
        if free is not None:
            self.free.set(free)
        self.floor.set(floor)
        self.seconds.set(rnd.seconds)
        self.last_ok.set(time.time())


class Janitor:
    def __init__(self, s: OpsSettings):
        self.s = s
        self.r = connect(s.redis_url)
        self.blobs = open_store(s)
        self.retention = Retention(JobStore(self.r, s.job_ttl_seconds), self.blobs, s)
        self.metrics = Metrics()
        self.deliverer = Deliverer(self.r, s, on_outcome=self._count)
        self.last_ok = 0.0
        self.started = time.time()
        self._owners: set[str] = set()
        self._stop = threading.Event()

    def round(self) -> Round | None:
        """One round if this janitor holds the lock (None otherwise)."""
        if not self.r.set(redis_keys.RETENTION_LOCK, "1", nx=True, px=int(self.s.retention_interval_seconds * 1000)):
            return None
        rnd = self.retention.sweep()
        free = self.blobs.free_bytes()
        totals = rnd.totals()
        self._owners = usage_store.write(
            self.r,
            by_owner=usage_by_owner(rnd),
            as_of=round(time.time(), 3),
            ttl_seconds=int(max(600, 10 * self.s.retention_interval_seconds)),
            previous_owners=self._owners,
            total={
                "kinds": totals,
                "free_bytes": free,
                "free_floor_bytes": self.s.storage_free_floor_bytes,
                "budget_bytes": self.s.storage_budget_bytes,
                "over_budget": rnd.over_budget,
            },
        )
        self.metrics.record(rnd, budget=self.s.storage_budget_bytes, free=free, floor=self.s.storage_free_floor_bytes)
        if rnd.removed:
            log.info(
                "retention round",
                extra={
                    "removed": len(rnd.removed),
                    "seconds": round(rnd.seconds, 3),
                    "bytes": sum(i.bytes for i, _ in rnd.removed),
                },
            )
        return rnd

    def _count(self, subject: str, outcome: dict[str, Any]) -> None:
        state = outcome["state"]
        self.metrics.callbacks.labels(subject=subject, outcome="retry" if state == "pending" else state).inc()

    def deliver_forever(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.deliverer.tick()
                self.metrics.outbox.set(self.deliverer.outbox.pending())
            except Exception:
                log.exception("delivering callbacks failed")
                busy = 0
            self._stop.wait(0.05 if busy else 1.0)

    def run(self) -> None:
        threading.Thread(target=self.deliver_forever, daemon=True, name="kadr-callbacks").start()
        while not self._stop.is_set():
            try:
                self.round()
                self.last_ok = time.time()
            except Exception:  # the next round tries again; health says so meanwhile
                self.metrics.failures.inc()
                log.exception("retention round failed")
            self._stop.wait(self.s.retention_interval_seconds)

    def healthy(self) -> bool:
        limit = 3 * self.s.retention_interval_seconds
        return time.time() - (self.last_ok or self.started) < limit

    def stop(self) -> None:
        self._stop.set()


def serve(j: Janitor, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path.startswith("/metrics"):
                body, ctype, status = generate_latest(j.metrics.registry), CONTENT_TYPE_LATEST, 200
            elif self.path.startswith("/healthz"):
                ok = j.healthy()
                body = json.dumps({"ok": ok, "last_success": j.last_ok or None}).encode()
                ctype, status = "application/json", 200 if ok else 503
            else:
                body, ctype, status = b"not found\n", "text/plain", 404
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="kadr-janitor-http").start()
    return server


def main() -> None:
    s = OpsSettings()
    setup_logging(s.log_level, service="janitor")
    j = Janitor(s)
    serve(j, s.exporter_host, s.janitor_port)
    log.info(
        "janitor started",
        extra={"port": s.janitor_port, "interval": s.retention_interval_seconds, "budget": s.storage_budget_bytes},
    )
    j.run()


if __name__ == "__main__":
    main()
