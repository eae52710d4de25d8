"""What is queued and who is serving it, read from Redis: queue depths (waiting and
reserved), live worker processes per queue and their memory.

Shared by the gateway's ops view, the exporter and the autoscaler.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from services.contracts import redis_keys
from services.contracts.tasks import PRIORITY_STEPS, UNACKED_KEY, queue_keys
from services.store.connection import decoded
from services.store.jobs import JobStore
from services.store.workers import live_workers


def queue_depths(r: redis.Redis, queues: list[str]) -> dict[str, dict[str, int]]:
    """``{queue: {"waiting": n, "reserved": n}}`` (waiting: at every priority step). Celery
    routes each kadr task by its queue name, so an unacked message's routing key names
    its queue."""
    pipe = r.pipeline()
    for q in queues:
        for key in queue_keys(q):
            pipe.llen(key)
    lengths = pipe.execute()
    steps = len(PRIORITY_STEPS)
    waiting = [sum(lengths[i * steps : (i + 1) * steps]) for i in range(len(queues))]
    reserved = dict.fromkeys(queues, 0)
    for raw in r.hvals(UNACKED_KEY):
        try:
            rk = json.loads(raw)[2]
        except (ValueError, IndexError, TypeError):
            continue
        if rk in reserved:
            reserved[rk] += 1
    return {q: {"waiting": int(w), "reserved": reserved[q]} for q, w in zip(queues, waiting)}


def busy_worker_ids(r: redis.Redis) -> set[str]:
    """Worker ids (host:pid) that hold a running job now."""
    ids = decoded(r.zrange(redis_keys.RUNNING, 0, -1))
    if not ids:
        return set()
    pipe = r.pipeline()
    for jid in ids:
        pipe.hget(JobStore.job_key(jid), "worker")
    return {w.decode() if isinstance(w, bytes) else w for w in pipe.execute() if w}


def workers_by_queue(r: redis.Redis, queues: list[str]) -> dict[str, dict[str, Any]]:
    """Per queue: live pool processes, busy ones, and the biggest RSS / CUDA footprint."""
    busy = busy_worker_ids(r)
    out: dict[str, dict[str, Any]] = {
        q: {"processes": 0, "busy": 0, "max_rss": 0, "total_rss": 0, "max_cuda": None} for q in queues
    }
    for w in live_workers(r):
        for q in w.get("queues", []):
            if q not in out:
                continue
            o = out[q]
            o["processes"] += 1
            o["busy"] += w["id"] in busy
            o["max_rss"] = max(o["max_rss"], int(w.get("rss") or 0))
            o["total_rss"] += int(w.get("rss") or 0)
            if w.get("cuda_reserved") is not None:
                o["max_cuda"] = max(o["max_cuda"] or 0, int(w["cuda_reserved"]))
    return out
