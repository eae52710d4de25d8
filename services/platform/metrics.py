"""Prometheus metrics shared by kadr processes (names: kadr_<service>_<noun>_<unit>).

No per-job labels: label values are bounded sets (service, outcome, reason, route).
Under gunicorn with several workers, set PROMETHEUS_MULTIPROC_DIR so every worker
writes to a shared directory and /metrics aggregates them.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

# Gateway requests: ``route`` is the URL rule ("/api/v1/jobs/<job_id>"), never the path,
# so the label set stays bounded whatever clients send.
REQUESTS = Counter("kadr_gateway_requests_total", "HTTP requests answered", ["route", "method", "status"])
REQUEST_SECONDS = Histogram(
    "kadr_gateway_request_duration_seconds",
    "Time to answer a request",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

# Camera deliveries answered with the event they repeat (a replay, or a retried 202).
REPLAYS = Counter("kadr_gateway_camera_replays_total", "Camera event deliveries that repeated an earlier one")
REJECTIONS = Counter("kadr_gateway_rejections_total", "Requests refused because a limit or a check failed", ["reason"])
# store: "redis" (past its high-water mark) or "blobs" (below the disk's free floor, or a
# write that met a full disk: the worker fails that job with storage_full).
STORAGE_FULL = Counter("kadr_storage_full_total", "New work refused or jobs failed for lack of room", ["store"])
# SSE streams and ?wait= long polls open now, over the gateway's live processes.
OPEN_STREAMS = Gauge("kadr_gateway_open_streams", "Open SSE streams and long polls", multiprocess_mode="livesum")
JOBS_ACCEPTED = Counter("kadr_gateway_jobs_accepted_total", "Jobs accepted", ["kind"])
UPLOAD_BYTES = Counter("kadr_gateway_upload_bytes_total", "Bytes of accepted uploads")
JOB_OUTCOMES = Counter("kadr_worker_jobs_total", "Jobs ended by a worker", ["service", "outcome"])
# Canceled by a user (POST .../cancel, DELETE); ``was`` queued or running. A running one's
# worker counts it again as outcome="canceled" when it stops.
JOBS_CANCELED = Counter(
    "kadr_gateway_jobs_canceled_total", "Jobs canceled or deleted before they ended", ["kind", "was"]
)
REDELIVERIES = Counter("kadr_worker_redeliveries_total", "Tasks delivered again after a worker died", ["service"])
STRANDED_RESTORED = Counter(
    "kadr_worker_stranded_messages_restored_total",
    "Messages held by no worker (left by a broker connection loss) put back on their queue",
    ["queue"],
)
CACHE_HITS = Counter("kadr_enhance_cache_hits_total", "Enhance results served from the cache")
FACES = Counter("kadr_enhance_faces_total", "Faces handled", ["outcome"])
# What a photo's phases took over the pool process's size when it started: the number the
# memory budget (KADR_ENHANCE_MEMORY_BUDGET_BYTES) is meant to bound.
PHOTO_PEAK_MEMORY = Histogram(
    "kadr_enhance_photo_peak_memory_bytes",
    "Peak resident memory of a photo's phase over its process's size at the start",
    ["phase"],
    buckets=[m * 2**20 for m in (64, 128, 192, 256, 320, 400, 512, 640, 800, 1024, 1536)],
)
_LONG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
TASK_SECONDS = Histogram("kadr_worker_task_duration_seconds", "Task run time", ["task"], buckets=_LONG_BUCKETS)
QUEUE_WAIT_SECONDS = Histogram(
    "kadr_worker_queue_wait_seconds",
    "From job accepted to its first start in a worker",
    ["task"],
    buckets=_LONG_BUCKETS,
)
MODEL_LOAD_SECONDS = Histogram(
    "kadr_worker_model_load_seconds",
    "Time to load a model into a process",
    ["model"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
# Summed over the live pool processes; a process that died takes its share with it.
CUDA_ALLOCATED = Gauge(
    "kadr_worker_cuda_memory_allocated_bytes", "CUDA memory held by tensors", ["service"], multiprocess_mode="livesum"
)
CUDA_RESERVED = Gauge(
    "kadr_worker_cuda_memory_reserved_bytes",
    "CUDA memory held by the caching allocator",
    ["service"],
    multiprocess_mode="livesum",
)


def observe_cuda_memory(service: str) -> None:
    """Record this process's CUDA memory; nothing at all (not zeros) where torch never
    touched a GPU, so a CPU box exports no CUDA series."""
    import sys

    torch = sys.modules.get("torch")  # never import torch just to look
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return
    CUDA_ALLOCATED.labels(service=service).set(torch.cuda.memory_allocated())
    CUDA_RESERVED.labels(service=service).set(torch.cuda.memory_reserved())


def render_latest() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)  # type: ignore[no-untyped-call]  # unannotated in prometheus_client
        return generate_latest(reg)
    return generate_latest()
