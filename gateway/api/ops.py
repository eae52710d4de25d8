"""What an operator looks at first: queues, worker processes, memory and model states.

The same facts the exporter publishes for Prometheus, read on demand from Redis (worker
heartbeats, kombu's queues) so the web UI's ops page needs no Prometheus.
"""

from __future__ import annotations

import time

import psutil
import redis
from flask import Response, jsonify
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag

from gateway.api.health import readiness
from gateway.context import kadr
from gateway.errors import ApiError
from gateway.responses import ErrorBody, OpsView
from services.contracts.tasks import QUEUES
from services.store import usage as usage_store
from services.store.fleet import busy_worker_ids, queue_depths
from services.store.workers import live_workers

bp = APIBlueprint("ops", __name__, url_prefix="/api/v1", abp_tags=[Tag(name="ops")], abp_security=[{"bearer": []}])


@bp.get(
    "/ops",
    summary="Queues, worker processes with their memory and models, Redis and host memory",
    responses={200: OpsView, 401: ErrorBody, 503: ErrorBody},
)
def ops_status() -> Response:
    k = kadr()
    try:
        depths = queue_depths(k.probe, list(QUEUES))
        busy = busy_worker_ids(k.probe)
        workers = live_workers(k.probe)
        info = k.probe.info("memory")
    except redis.RedisError as e:
        raise ApiError(503, "redis_unavailable", f"Redis is not answering: {e}", headers={"Retry-After": "5"})
    now = time.time()
    procs = sorted(
        (
            {
                "id": w["id"],
                "service": w.get("service"),
                "queues": w.get("queues", []),
                "busy": w["id"] in busy,
                "rss_bytes": int(w.get("rss") or 0),
                "cuda_reserved_bytes": w.get("cuda_reserved"),
                "heartbeat_age_seconds": round(max(0.0, now - float(w.get("ts") or now)), 3),
                "models": w.get("models") or {},
            }
            for w in workers
        ),
        key=lambda w: w["id"],
    )
    queues = {}
    for q in QUEUES:
        serving = [w for w in procs if q in w["queues"]]
        queues[q] = {
            **depths[q],
            "processes": len(serving),
            "busy": sum(w["busy"] for w in serving),
            "rss_bytes": sum(w["rss_bytes"] for w in serving),
            "required": q in k.settings.required_queues,
        }
    vm = psutil.virtual_memory()
    return jsonify(
        {
            "time": round(now, 3),
            # As /readyz says it, but always 200 here: the page polls it while things are down.
            "readiness": readiness(k),
            "queues": queues,
            "workers": procs,
            "redis": {
                "used_memory_bytes": int(info.get("used_memory", 0)),
                "maxmemory_bytes": int(info.get("maxmemory", 0)),
            },
            # The blob store as the janitor last surveyed it (retention, budget, free floor).
            "storage": usage_store.read(k.probe, usage_store.TOTAL),
            # The gateway's host (its container under compose).
            "host": {
                "memory_total_bytes": vm.total,
                "memory_available_bytes": vm.available,
                "cpu_count": psutil.cpu_count(),
            },
        }
    )
