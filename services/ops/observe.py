"""What the ops processes read about queues, workers and GPUs (Redis, NVML).

Shared by the exporter (which shows it) and the autoscaler (which acts on it).
"""
from __future__ import annotations

import json
import logging
import threading
from typing import Any

import redis

from services.common.batch_feed import UNACKED_KEY  # kombu: delivery tag → [message, exchange, key]
from services.common.jobs import RUNNING_KEY, JobStore
from services.common.workers import live_workers

log = logging.getLogger("kadr.ops")


def queue_depths(r: redis.Redis, queues: list[str]) -> dict[str, dict[str, int]]:
    """``{queue: {"waiting": n, "reserved": n}}``. Celery routes each kadr task by its
    queue name, so an unacked message's routing key names its queue."""
    pipe = r.pipeline()
    for q in queues:
        pipe.llen(q)
    waiting = pipe.execute()
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
    ids = r.zrange(RUNNING_KEY, 0, -1)
    if not ids:
        return set()
    pipe = r.pipeline()
    for jid in ids:
        pipe.hget(JobStore.job_key(jid), "worker")
    return {w.decode() if isinstance(w, bytes) else w for w in pipe.execute() if w}


def workers_by_queue(r: redis.Redis, queues: list[str]) -> dict[str, dict[str, Any]]:
    """Per queue: live pool processes, busy ones, and the biggest RSS / CUDA footprint."""
    busy = busy_worker_ids(r)
    out = {q: {"processes": 0, "busy": 0, "max_rss": 0, "total_rss": 0, "max_cuda": None} for q in queues}
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


class Nvml:
    """NVML if a driver answers; otherwise ``available`` is False and nothing is read."""

    def __init__(self) -> None:
        self.available = False
        self._lock = threading.Lock()
        try:
            import pynvml
            pynvml.nvmlInit()
            self.nv = pynvml
            self.count = pynvml.nvmlDeviceGetCount()
            self.available = self.count > 0
        except Exception as e:  # no package, no driver, no device: all mean "no GPU series"
            log.info("no GPU metrics: %s", e)

    def read(self) -> list[dict[str, Any]]:
        if not self.available:
            return []
        nv, out = self.nv, []
        with self._lock:
            for i in range(self.count):
                h = nv.nvmlDeviceGetHandleByIndex(i)
                mem = nv.nvmlDeviceGetMemoryInfo(h)
                out.append({"gpu": str(i), "name": nv.nvmlDeviceGetName(h),
                            "util": nv.nvmlDeviceGetUtilizationRates(h).gpu / 100.0,
                            "mem_used": mem.used, "mem_total": mem.total,
                            "temp": nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)})
        return out


def free_gpu_bytes(nvml: Nvml) -> int | None:
    gpus = nvml.read()
    return max((g["mem_total"] - g["mem_used"] for g in gpus), default=None) if gpus else None
