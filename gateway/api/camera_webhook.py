"""The webhook cameras call: ``POST /api/v1/camera/{camera_id}/events``.

Authenticated by the camera's own credential (``services.contracts.camera_auth``), not by
an API key: cameras are configured by the operator (``KADR_CAMERAS``) and hold no key.

An accepted event is a job record (kind ``camera_event``, owner ``camera:<id>``) and a
``camera.event`` task on the ``camera`` queue, both written before the 202: Redis
(AOF) holds it from then on, the worker acks late, so an accepted event is never
dropped. Past ``camera_max_backlog`` waiting events the webhook answers 503 with
Retry-After (``admit``; counted in ``kadr_gateway_rejections_total{reason="camera_backlog_full"}``)
so a camera retries instead of the queue growing without bound. A replayed or retried
delivery answers 200 with the original event, never a second one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Mapping
from typing import Any, cast

from flask import Response, g, jsonify, request
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from werkzeug.datastructures import Headers

from gateway.api.cameras import camera_config, event_view
from gateway.api.locations import accepted
from gateway.api.models import Id, RequestModel
from gateway.context import Kadr, kadr
from gateway.dispatch import admit, send
from gateway.errors import ApiError, validation_message
from gateway.responses import CameraEventView, ErrorBody
from gateway.uploads import check_image, store_image
from services.contracts import blob_keys, redis_keys
from services.contracts.camera_auth import SIGNATURE_HEADER, CameraAuthError, verify
from services.contracts.tasks import CAMERA_EVENT, CameraEventTask
from services.platform.metrics import JOBS_ACCEPTED, REPLAYS
from services.store.camera_events import EVENT_KIND, index_event, owner_of
from services.store.connection import decoded
from services.store.jobs import new_id

log = logging.getLogger("kadr.gateway")

webhook_bp = APIBlueprint("camera_webhook", __name__, url_prefix="/api/v1", abp_tags=[Tag(name="cameras")])


MAX_IMAGES_PER_EVENT = 10


_KIND_RE = re.compile(r"^[A-Za-z0-9_\-]{1,40}$")


_RESERVED = re.compile(r"^(snow|candidate_\d+|plate_\d+)$")


class EventBody(BaseModel):
    """What a camera may send; any other field is kept as given (``extra``)."""

    model_config = ConfigDict(extra="allow")

    ts: float | None = Field(None, description="event time, epoch seconds; default: when received")
    vehicle_box: list[int] | None = Field(None, description="[x, y, w, h] in pixels")
    plate_box: list[int] | None = Field(None, description="[x, y, w, h] in pixels")
    plate: str | None = Field(None, max_length=32)

    @field_validator("ts")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not (math.isfinite(v) and v > 0):
            raise ValueError("ts must be a positive number of epoch seconds")
        return v

    @field_validator("vehicle_box", "plate_box")
    @classmethod
    def _box(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (len(v) != 4 or v[2] <= 0 or v[3] <= 0):
            raise ValueError("a box is [x, y, w, h] with w and h above 0")
        return v


class CameraPath(RequestModel):
    camera_id: Id


def _parse_box(raw: str) -> Any:
    raw = raw.strip()
    return json.loads(raw) if raw.startswith("[") else [int(float(p)) for p in raw.split(",")]


def _body_fields(body: bytes) -> object:
    """The event's fields from a JSON body or from multipart form fields (EventBody checks them)."""
    ctype = request.mimetype
    try:
        if ctype == "multipart/form-data" or ctype == "application/x-www-form-urlencoded":
            form = request.form
            if "event" in form:
                return json.loads(form["event"])
            fields: dict[str, Any] = {k: v for k, v in form.items() if k != "token"}
            for name in ("vehicle_box", "plate_box"):
                if fields.get(name):
                    fields[name] = _parse_box(fields[name])
            return fields
        if not body.strip():
            return {}
        data = json.loads(body)
    except (ValueError, TypeError) as e:
        raise ApiError(400, "invalid_body", f"the event body cannot be read: {e}")
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", "the event body must be a JSON object")
    return data


def _store_uploads(k: Kadr, event_id: str) -> dict[str, dict[str, Any]]:
    files = [(field, f) for field, f in request.files.items(multi=True) if f.filename or f.content_length]
    if len(files) > MAX_IMAGES_PER_EVENT:
        raise ApiError(400, "too_many_files", f"{len(files)} images sent; at most {MAX_IMAGES_PER_EVENT}")
    images: dict[str, dict[str, Any]] = {}
    for i, (field, f) in enumerate(files):
        info = check_image(f, max_bytes=k.settings.max_upload_bytes, max_pixels=k.settings.max_image_pixels)
        kind = field if _KIND_RE.match(field) and not _RESERVED.match(field) else f"upload_{i}"
        if kind in images:
            kind = f"{kind}_{i}"
        images[kind] = store_image(f, info, k.blobs, blob_keys.event_upload(event_id, kind))
    return images


@webhook_bp.post(
    "/camera/<camera_id>/events",
    summary="A camera reports an event (camera credential: HMAC signature or token)",
    responses={
        202: CameraEventView,
        200: CameraEventView,
        400: ErrorBody,
        401: ErrorBody,
        404: ErrorBody,
        409: ErrorBody,
        413: ErrorBody,
        503: ErrorBody,
        507: ErrorBody,
    },
)
def post_event(path: CameraPath) -> Response:
    k = kadr()
    s = k.settings
    cam = camera_config(k, path.camera_id)
    if (request.content_length or 0) > s.camera_max_event_bytes:
        raise ApiError(413, "payload_too_large", f"an event may carry at most {s.camera_max_event_bytes} bytes")
    body = request.get_data(cache=True)  # the signature covers the raw bytes; forms parse from the cache
    try:
        # werkzeug's Headers reads like a Mapping (case-insensitive), but its stubs do not declare one.
        verify(
            cam.auth,
            cam.secret.get_secret_value(),
            cast(Mapping[str, str], request.headers),
            request.args,
            body,
            now=time.time(),
            window_seconds=s.camera_replay_window_seconds,
        )
    except CameraAuthError as e:
        raise ApiError(401, "unauthorized", f"camera {cam.id}: {e}")
    try:
        ev = EventBody.model_validate(_body_fields(body))
    except ValidationError as e:
        raise ApiError(400, "invalid_parameters", validation_message(e, EventBody)[0])
    seen_key = _seen_key(cam.id, request.headers, body, ev.ts is not None)
    if seen_key and (prior := decoded(k.redis.get(seen_key))):
        return _replayed(k, prior)
    admit(k, CAMERA_EVENT)
    received = time.time()
    if ev.ts is not None and ev.ts > received + s.camera_replay_window_seconds:
        raise ApiError(
            400,
            "invalid_parameters",
            "ts lies in the future: send epoch seconds (not milliseconds) from an NTP-synced clock",
        )
    event_id = new_id()
    extra = dict(ev.model_extra or {})
    params: dict[str, Any] = {
        "camera": cam.id,
        "ts": ev.ts if ev.ts is not None else round(received, 3),
        "ts_given": ev.ts is not None,
        "vehicle_box": ev.vehicle_box,
        "plate_box": ev.plate_box,
        "plate": ev.plate,
        "extra": extra,
        "offsets": list(cam.offsets),
    }
    try:
        size = len(json.dumps(params, allow_nan=False))
    except ValueError:
        raise ApiError(400, "invalid_body", "the event's fields must not hold NaN or infinity")
    if size > s.camera_max_event_fields_bytes:
        raise ApiError(
            413,
            "event_too_large",
            f"the event's fields take {size} bytes as JSON (limit {s.camera_max_event_fields_bytes}, "
            "KADR_CAMERA_MAX_EVENT_FIELDS_BYTES); send images as files, not in fields",
        )
    k.storage.check()
    # Claimed before anything is written: of two copies arriving together, one creates.
    if seen_key and not k.redis.set(seen_key, event_id, nx=True, ex=s.camera_replay_window_seconds * 2):
        return _replayed(k, decoded(k.redis.get(seen_key)) or "")
    try:
        images = _store_uploads(k, event_id)
    except BaseException:
        if seen_key:
            k.redis.delete(seen_key)  # nothing was made: the camera's retry may create it
        raise
    p = k.redis.pipeline()
    # Its end goes to the camera's webhook_url through the outbox (services/upkeep/delivery.py).
    job = k.jobs.create(
        kind=EVENT_KIND,
        owner=owner_of(cam.id),
        params=params,
        input={"images": images},
        request_id=g.request_id,
        job_id=event_id,
        pipe=p,
        callback_url=cam.webhook_url or "",
        callback_subject="event",
    )
    index_event(p, cam.id, event_id, params["ts"], s.job_ttl_seconds)
    p.execute()
    send(k, CAMERA_EVENT, CameraEventTask(job_id=event_id, camera_id=cam.id, request_id=g.request_id))
    JOBS_ACCEPTED.labels(kind=EVENT_KIND).inc()
    return accepted(event_view(job), f"/api/v1/camera/events/{event_id}")


def _seen_key(camera_id: str, headers: Headers, body: bytes, timed: bool) -> str | None:
    """What makes a delivery the same event, if anything: the camera's Idempotency-Key;
    else its HMAC signature (a replayed or retried signed request is byte for byte the
    same); else, for a token camera, the body when it names the event's time (``ts``):
    without a time, two identical events are two events."""
    nonce = headers.get("Idempotency-Key", "").strip()[:255] or headers.get(SIGNATURE_HEADER, "").strip()
    if not nonce and timed:
        nonce = "body:" + hashlib.sha256(body).hexdigest()
    if not nonce:
        return None
    return redis_keys.camera_seen(camera_id, nonce)


def _replayed(k: Kadr, event_id: str) -> Response:
    """A delivery seen before (a replay within the window, or a camera retrying a 202 it
    lost): the original event, 200, never a second one."""
    job = k.jobs.get(event_id) if event_id else None
    if job is None:
        raise ApiError(
            409,
            "event_in_progress",
            "the first delivery of this event is still being accepted",
            headers={"Retry-After": "1"},
        )
    REPLAYS.inc()
    resp = jsonify(event_view(job))
    resp.headers["Idempotent-Replayed"] = "true"
    resp.headers["Location"] = f"/api/v1/camera/events/{event_id}"
    return resp
