"""Prometheus metrics shared by kadr processes (names: kadr_<service>_<noun>_<unit>).

No per-job labels: label values are bounded sets (service, outcome, reason, route).
Under gunicorn with several workers, set PROMETHEUS_MULTIPROC_DIR so every worker
writes to a shared directory and /metrics aggregates them.
"""
from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

REJECTIONS = Counter("kadr_gateway_rejections_total",
                     "Requests refused because a limit or a check failed", ["reason"])
JOBS_ACCEPTED = Counter("kadr_gateway_jobs_accepted_total", "Jobs accepted", ["kind"])
UPLOAD_BYTES = Counter("kadr_gateway_upload_bytes_total", "Bytes of accepted uploads")
JOB_OUTCOMES = Counter("kadr_worker_jobs_total", "Jobs ended by a worker", ["service", "outcome"])
REDELIVERIES = Counter("kadr_worker_redeliveries_total",
                       "Tasks delivered again after a worker died", ["service"])
CACHE_HITS = Counter("kadr_enhance_cache_hits_total", "Enhance results served from the cache")
FACES = Counter("kadr_enhance_faces_total", "Faces handled", ["outcome"])
TASK_SECONDS = Histogram("kadr_worker_task_duration_seconds", "Task run time", ["task"],
                         buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600))


def render_latest() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)
        return generate_latest(reg)
    return generate_latest()
