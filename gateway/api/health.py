"""Liveness, readiness and metrics (open: no API key)."""

from __future__ import annotations

import time
from typing import Any

import redis
from flask import Response, jsonify
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag

from gateway.context import Kadr, kadr
from services.contracts.model_states import NOT_LOADED, READY
from services.platform.celery_app import queue_length
from services.platform.metrics import render_latest
from services.store.workers import live_workers

bp = APIBlueprint("health", __name__, abp_tags=[Tag(name="health")])


@bp.get("/healthz", summary="The gateway process is alive")
def healthz() -> Response:
    return jsonify({"status": "ok", "time": round(time.time(), 3)})


def readiness(k: Kadr) -> dict[str, Any]:
    """``{"status": "ready"|"not_ready", "checks": {...}}``: Redis, a live worker per
    required queue, and whether their models can serve."""
    checks: dict[str, Any] = {"redis": {"ok": False}, "queues": {}, "models": {}}
    ready = True
    try:
        k.probe.ping()
        checks["redis"] = {"ok": True}
        workers = live_workers(k.probe)
    except redis.RedisError as e:
        checks["redis"] = {"ok": False, "message": str(e)}
        workers, ready = [], False
    for q in k.settings.required_queues:
        serving = [w for w in workers if q in w.get("queues", [])]
        backlog = None
        if checks["redis"]["ok"]:
            backlog = queue_length(k.probe, q)
        checks["queues"][q] = {"workers": len(serving), "backlog": backlog}
        if not serving:
            ready = False
        # A model is as ready as its best-off worker process: one ready process serves.
        models: dict[str, Any] = {}
        for w in serving:
            for name, st in (w.get("models") or {}).items():
                if name not in models or st.get("state") == READY:
                    models[name] = st
        checks["models"][q] = models
        # Loaded, or present and loaded on first use: both serve. Missing weights, a failed
        # load or one still in progress do not.
        if any(st.get("state") not in (READY, NOT_LOADED) for st in models.values()):
            ready = False
    return {"status": "ready" if ready else "not_ready", "checks": checks}


@bp.get("/readyz", summary="Redis reachable, a live worker per queue, model states")
def readyz() -> Response:
    body = readiness(kadr())
    resp = jsonify(body)
    resp.status_code = 200 if body["status"] == "ready" else 503
    return resp


@bp.get("/metrics", summary="Prometheus metrics of the gateway")
def metrics() -> Response:
    return Response(render_latest(), mimetype="text/plain; version=0.0.4")
