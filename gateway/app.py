"""Flask app factory of the kadr gateway.

The gateway validates, stores uploads as blobs, records jobs and sends tasks by name.
It never imports torch or a worker package: a test checks ``torch`` is absent from
``sys.modules`` after ``create_app()``.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Response, g, redirect, request
from flask.json.provider import DefaultJSONProvider
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.info import Info
from flask_openapi3.openapi import OpenAPI
from flask_openapi3.types import SecuritySchemesDict
from werkzeug.wrappers import Response as WerkzeugResponse

from gateway import auth, errors
from gateway.context import Kadr
from gateway.fanout import Fanout
from gateway.holds import Holds
from gateway.responses import ErrorBody
from gateway.settings import GatewaySettings
from gateway.storage_guard import StorageGuard
from services.platform.celery_app import create_celery
from services.platform.dispatch import Dispatcher
from services.platform.logs import request_id_var
from services.platform.metrics import REQUEST_SECONDS, REQUESTS
from services.store.batches import BatchStore
from services.store.blobs import open_store
from services.store.connection import connect
from services.store.jobs import JobStore
from services.upkeep.batch_feed import Feeder

_PLAIN_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
log = logging.getLogger("kadr.gateway")

BEARER: SecuritySchemesDict = {"bearer": {"type": "http", "scheme": "bearer"}}


class _JSONProvider(DefaultJSONProvider):
    sort_keys = False  # keys in the order views build them


class _OpenAPI(OpenAPI):
    """flask-openapi3 documents the 400 it adds to every operation as a list of error
    bodies; kadr answers every error, validation included, with one ``ErrorBody``."""

    json_provider_class = _JSONProvider

    def generate_spec_json(self) -> None:
        super().generate_spec_json()  # type: ignore[no-untyped-call]  # flask-openapi3 leaves it unannotated
        for path_item in self.spec_json["paths"].values():
            for op in path_item.values():
                for status in (400, "400"):
                    resp = (op.get("responses") or {}).get(status)
                    schema = ((resp or {}).get("content") or {}).get("application/json", {}).get("schema", {})
                    if resp is not None and schema.get("type") == "array":
                        resp["content"]["application/json"]["schema"] = {"$ref": "#/components/schemas/ErrorBody"}


def create_app(settings: GatewaySettings | None = None) -> OpenAPI:
    settings = settings or GatewaySettings()
    app = _OpenAPI(
        __name__,
        info=Info(
            title="kadr API", version="1.0.0", description="Photo restoration, video segmentation and camera events."
        ),
        security_schemes=BEARER,
        doc_prefix="/api",
        doc_url="/openapi.json",
        validation_error_status=400,
        validation_error_callback=errors.openapi_validation_callback,
        validation_error_model=ErrorBody,
    )
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    # Files above this are spooled to disk by werkzeug instead of held in memory.
    app.config["MAX_FORM_MEMORY_SIZE"] = 1024 * 1024

    r = connect(settings.redis_url)
    job_store = JobStore(r, settings.job_ttl_seconds)
    batch_store = BatchStore(job_store)
    probe = connect(settings.redis_url, ride_out_restarts=False)
    blobs = open_store(settings)

    send = Dispatcher(create_celery(settings))
    app.extensions["kadr"] = Kadr(
        settings=settings,
        redis=r,
        jobs=job_store,
        blobs=blobs,
        send=send,
        batches=batch_store,
        probe=probe,
        feeder=Feeder(
            batch_store,
            send,
            window=settings.batch_window,
            redispatch_seconds=settings.batch_redispatch_seconds,
            queue_limit=settings.max_queue_backlog,
        ),
        fanout=Fanout(lambda: connect(settings.redis_url)),
        holds=Holds(
            r,
            per_key=settings.max_streams_per_key,
            per_process=settings.max_open_streams,
            longest_seconds=max(settings.sse_max_seconds, 60.0),
        ),
        storage=StorageGuard(
            probe,
            high_water=settings.redis_high_water,
            max_age_seconds=settings.redis_memory_check_seconds,
            blobs=blobs,
            free_floor=settings.storage_free_floor_bytes,
        ),
    )

    @app.before_request
    def _request_id() -> None:
        # A client's id only if it is a plain token (nginx keeps the same rule): it is
        # echoed in headers and logs.
        rid = request.headers.get("X-Request-ID", "")
        rid = rid if _PLAIN_ID.fullmatch(rid) else uuid.uuid4().hex
        g.request_id = rid
        g.t0 = time.perf_counter()
        request_id_var.set(rid)
        # JSON bodies are parsed whole in memory: only files may be big (they spool to disk).
        if request.mimetype == "application/json" and (request.content_length or 0) > settings.max_json_bytes:
            raise errors.ApiError(
                413,
                "payload_too_large",
                f"a JSON body may be at most {settings.max_json_bytes} "
                "bytes (KADR_MAX_JSON_BYTES); send files as multipart/form-data",
            )

    @app.after_request
    def _echo_request_id(resp: Response) -> Response:
        resp.headers["X-Request-ID"] = g.get("request_id", "")
        # The URL rule, not the path: ids in paths would make a series per job.
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        REQUESTS.labels(route=route, method=request.method, status=str(resp.status_code)).inc()
        if "t0" in g:
            # Streamed bodies (ZIPs, overlays) are timed to their first byte.
            REQUEST_SECONDS.labels(route=route, method=request.method).observe(time.perf_counter() - g.t0)
        return resp

    errors.install(app)
    auth.install(app)

    from gateway.api import (
        batch_controls,
        batch_exports,
        batches,
        camera_webhook,
        cameras,
        enhance,
        enhance_options,
        health,
        jobs,
        ops,
        usage,
        video_reports,
        video_uploads,
        videos,
    )

    for bp in (
        health.bp,
        enhance_options.bp,
        enhance.bp,
        jobs.bp,
        batches.bp,
        batch_controls.bp,
        batch_exports.bp,
        video_uploads.bp,
        videos.bp,
        video_reports.bp,
        camera_webhook.webhook_bp,
        cameras.bp,
        ops.bp,
        usage.bp,
    ):
        _keep_shared_paths(app, bp)
        app.register_api(bp)

    # flask-openapi3 evaluates a route's hints at runtime: flask.typing's names would not resolve there
    @app.get("/api/docs", doc_ui=False)
    def _docs() -> WerkzeugResponse:
        return redirect("/api/swagger", code=302)

    return app


def _keep_shared_paths(app: OpenAPI, bp: APIBlueprint) -> None:
    """flask-openapi3 keeps one spec entry per path, the last blueprint's: two blueprints
    sharing a path (POST /videos in video_uploads, GET /videos in video_reports) would
    leave one operation out. Carry the earlier operations into the later entry."""
    for uri, item in bp.paths.items():
        prior = app.paths.get(uri)
        if prior is not None:
            for method in ("get", "put", "post", "delete", "options", "head", "patch", "trace"):
                if getattr(item, method) is None and getattr(prior, method) is not None:
                    setattr(item, method, getattr(prior, method))
