"""Recent task run times per service, kept in Redis for the autoscaler.

Prometheus has the full histograms, but the autoscaler must work without Prometheus
(``make up`` runs none): each finished task appends ``"<end ts>:<seconds>"`` to a short
per-service list. Only entries from the last ``window`` seconds count, so one slow
hour does not keep the average high after the load has changed.
"""
from __future__ import annotations

import time

import redis

KEY = "kadr:stats:task_seconds:"
KEEP = 100


def record(r: redis.Redis, service: str, seconds: float, now: float | None = None) -> None:
    now = time.time() if now is None else now
    key = KEY + service
    try:
        r.pipeline().lpush(key, f"{now:.3f}:{seconds:.4f}").ltrim(key, 0, KEEP - 1).expire(key, 86400).execute()
    except redis.RedisError:
        pass  # a statistic, never a reason to fail the task that just finished


def recent_mean(r: redis.Redis, service: str, window: float = 600.0, now: float | None = None) -> float | None:
    now = time.time() if now is None else now
    values = []
    for raw in r.lrange(KEY + service, 0, KEEP - 1):
        ts, _, secs = (raw.decode() if isinstance(raw, bytes) else raw).partition(":")
        if now - float(ts) <= window:
            values.append(float(secs))
    return sum(values) / len(values) if values else None
