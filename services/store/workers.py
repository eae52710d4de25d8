"""Worker presence: each worker process publishes who it is, which queues it consumes
and its models' registry states, under a key that expires when it stops publishing.

Readiness reads these keys instead of broadcasting a Celery ``inspect`` on every probe,
which would cost a round trip to every worker and block for its timeout. They are found
through an index (a sorted set of worker id by expiry), not a SCAN of the keyspace:
``/readyz`` is an open endpoint and must cost O(workers), whatever Redis holds.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from services.contracts import redis_keys
from services.store.connection import decoded


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def publish(
    r: redis.Redis,
    *,
    service: str,
    queues: list[str],
    models: dict[str, Any],
    ttl: float,
    extra: dict[str, Any] | None = None,
) -> None:
    body: dict[str, Any] = {
        "id": worker_id(),
        "service": service,
        "queues": queues,
        "models": models,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "ts": round(time.time(), 3),
    }
    body.update(extra or {})
    now = time.time()
    p = r.pipeline()
    p.set(redis_keys.worker(body["id"]), json.dumps(body), px=int(ttl * 1000))
    p.zadd(redis_keys.WORKERS, {body["id"]: now + ttl})
    p.zremrangebyscore(redis_keys.WORKERS, "-inf", now - 60)  # workers gone a minute: forgotten
    p.execute()


def withdraw(r: redis.Redis) -> None:
    p = r.pipeline()
    p.delete(redis_keys.worker(worker_id()))
    p.zrem(redis_keys.WORKERS, worker_id())
    p.execute()


def live_workers(r: redis.Redis) -> list[dict[str, Any]]:
    ids = decoded(r.zrangebyscore(redis_keys.WORKERS, time.time(), "+inf"))
    ids = [i.decode() if isinstance(i, bytes) else i for i in ids]
    out = []
    for raw in r.mget([redis_keys.worker(i) for i in ids]) if ids else []:
        if raw:
            out.append(json.loads(raw))
    return out


def _footprint() -> dict[str, int]:
    """What this process holds, so the autoscaler knows what one more would cost."""
    import sys

    import psutil

    out = {"rss": psutil.Process().memory_info().rss}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda_reserved"] = torch.cuda.memory_reserved()
    return out


class Heartbeat(threading.Thread):
    """Publishes every ``interval`` seconds until stopped; a key outlives three missed beats."""

    def __init__(
        self, r: redis.Redis, *, service: str, queues: list[str], models: Callable[[], dict[str, Any]], interval: float
    ):
        super().__init__(name="kadr-heartbeat", daemon=True)
        self.r, self.service, self.queues, self.models, self.interval = r, service, queues, models, interval
        self._stop_event = threading.Event()

    def beat(self) -> None:
        try:
            publish(
                self.r,
                service=self.service,
                queues=self.queues,
                models=self.models(),
                ttl=self.interval * 3,
                extra=_footprint(),
            )
        except redis.RedisError:
            pass  # Redis down: the key expires and readiness says so

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.beat()
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        try:
            withdraw(self.r)
        except redis.RedisError:
            pass
