"""Cameras: the events API and buffer health, behind a bearer key like every /api/v1
route (the webhook cameras call is gateway/api/camera_webhook.py). Camera events belong to
the installation, not to a key: every valid key sees every event."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Response, jsonify
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag
from pydantic import Field

from gateway.api.models import MAX_OFFSET, Id, RequestModel
from gateway.blob_files import send_blob
from gateway.context import Kadr, kadr
from gateway.errors import ApiError
from gateway.filenames import sanitize_filename
from gateway.responses import CameraEventsPage, CameraEventView, CamerasView, Deleted, ErrorBody, binary
from services.contracts.records import EventJob
from services.contracts.settings import CameraConfig
from services.contracts.tasks import CAMERA_QUEUE
from services.platform.celery_app import queue_length
from services.store.blobs import BlobNotFound
from services.store.camera_events import EVENT_KIND, list_event_ids, read_buffers
from services.store.purge import purge_job

log = logging.getLogger("kadr.gateway")

bp = APIBlueprint(
    "cameras", __name__, url_prefix="/api/v1", abp_tags=[Tag(name="cameras")], abp_security=[{"bearer": []}]
)


class EventPath(RequestModel):
    event_id: Id


class ImagePath(EventPath):
    kind: str = Field(..., max_length=40, description="snow, candidate_N, plate_N or an uploaded image's name")


class EventsQuery(RequestModel):
    camera: str | None = Field(None, max_length=64)
    since: float | None = Field(None, allow_inf_nan=False, description="event time from (epoch seconds, inclusive)")
    until: float | None = Field(None, allow_inf_nan=False, description="event time up to (epoch seconds, inclusive)")
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    limit: int = Field(50, ge=1, le=500, description="1–500")


def camera_config(k: Kadr, camera_id: str) -> CameraConfig:
    cam = k.settings.camera(camera_id)
    if cam is None:
        raise ApiError(404, "not_found", f"no camera {camera_id}")
    return cam


def event_view(job: EventJob) -> dict[str, Any]:
    eid = job["id"]
    params = job.get("params") or {}
    result = dict(job.get("result") or {})
    kinds = list((result.pop("images", None) or {}).keys())
    clip = result.pop("clip", None)
    uploads = (job.get("input") or {}).get("images") or {}
    kinds += [k for k in uploads if k not in kinds]
    base = f"/api/v1/camera/events/{eid}"
    links = {"self": base}
    if clip:
        result["clip"] = {k: v for k, v in clip.items() if k != "blob"}
        if clip.get("state") == "ready":
            links["clip"] = f"{base}/clip.mp4"
    return {
        "id": eid,
        "camera": params.get("camera"),
        "state": job["state"],
        "ts": params.get("ts"),
        "received_at": job["created_at"],
        "started_at": job.get("started_at"),
        "finished_at": job.get("finished_at"),
        "vehicle_box": params.get("vehicle_box"),
        "plate_box": params.get("plate_box"),
        "plate": params.get("plate"),
        "extra": params.get("extra") or {},
        "offsets": params.get("offsets"),
        "uploads": {k: {f: v for f, v in u.items() if f != "blob"} for k, u in uploads.items()},
        "result": result or None,
        "error": job.get("error"),
        "images": {k: f"{base}/images/{k}" for k in kinds},
        "links": links,
    }


def _event(event_id: str) -> EventJob:
    job = kadr().jobs.get(event_id)
    if job is None or job.get("kind") != EVENT_KIND:
        raise ApiError(404, "not_found", f"no camera event {event_id}")
    return job


@bp.get(
    "/camera/events",
    summary="Camera events, newest first (every key sees every camera's events)",
    responses={200: CameraEventsPage, 400: ErrorBody, 401: ErrorBody},
)
def list_events(query: EventsQuery) -> Response:
    k = kadr()
    if query.camera is not None:
        camera_config(k, query.camera)
    ids, total = list_event_ids(
        k.redis, camera_id=query.camera, since=query.since, until=query.until, offset=query.offset, limit=query.limit
    )
    events = [event_view(j) for j in k.jobs.get_many(ids) if j is not None]
    return jsonify({"events": events, "total": total, "offset": query.offset, "limit": query.limit})


@bp.get(
    "/camera/events/<event_id>",
    summary="One camera event: state, frames chosen, scores, plates",
    responses={200: CameraEventView, 401: ErrorBody, 404: ErrorBody},
)
def get_event(path: EventPath) -> Response:
    return jsonify(event_view(_event(path.event_id)))


@bp.get(
    "/camera/events/<event_id>/images/<kind>",
    summary="An image of an event: snow, candidate_N, plate_N or an uploaded image",
    responses={200: binary("image/jpeg", "the image"), 401: ErrorBody, 404: ErrorBody},
)
def get_event_image(path: ImagePath) -> Response:
    k = kadr()
    job = _event(path.event_id)
    produced = (job.get("result") or {}).get("images") or {}
    uploads = (job.get("input") or {}).get("images") or {}
    if path.kind in produced:
        key, mime = produced[path.kind], "image/jpeg"
    elif path.kind in uploads:
        key, mime = uploads[path.kind]["blob"], f"image/{uploads[path.kind].get('format', 'jpeg')}"
    else:
        available = ", ".join(list(produced) + list(uploads)) or "none yet"
        raise ApiError(404, "not_found", f"event has no image {path.kind!r} (available: {available})")
    try:
        data = k.blobs.get_bytes(key)
    except BlobNotFound:
        raise ApiError(410, "gone", "that image's file was removed")
    name = sanitize_filename(f"{job['id']}-{path.kind}.jpg")
    return Response(
        data,
        mimetype=mime,
        headers={"Cache-Control": "private, max-age=3600", "Content-Disposition": f'inline; filename="{name}"'},
    )


@bp.get(
    "/camera/events/<event_id>/clip.mp4",
    summary="The event's clip: the buffered seconds before and after it (H.264 MP4, Range requests)",
    responses={200: binary("video/mp4", "the clip"), 401: ErrorBody, 404: ErrorBody, 409: ErrorBody, 410: ErrorBody},
)
def get_event_clip(path: EventPath) -> Response:
    job = _event(path.event_id)
    clip = (job.get("result") or {}).get("clip")
    if job["state"] != "succeeded":
        raise ApiError(
            409,
            "not_ready",
            f"event is {job['state']}; its clip exists once it succeeded",
            details={"state": job["state"]},
        )
    if not clip or clip.get("state") != "ready":
        reason = (clip or {}).get("reason") or "this camera keeps no clip (no buffer, or a clip of 0 s)"
        raise ApiError(404, "no_clip", f"event has no clip: {reason}")
    return send_blob(
        clip["blob"],
        "video/mp4",
        etag=f"{job['id']}-clip",
        gone="the clip's file was removed",
        download_name=sanitize_filename(f"{job['params'].get('camera', 'camera')}-{job['id']}.mp4"),
    )


@bp.delete(
    "/camera/events/<event_id>",
    summary="Delete a camera event with its images (scope cameras:manage)",
    responses={200: Deleted, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody},
)
def delete_event(path: EventPath) -> Response:
    k = kadr()
    job = _event(path.event_id)
    removed = purge_job(k.jobs, k.blobs, job)
    log.info("camera event deleted", extra={"event": job["id"], "files": removed})
    return jsonify({"id": job["id"], "deleted": True, "files_removed": removed})


def _source_kind(source: str) -> str:
    # The URL itself may carry the camera's password: only its kind is shown.
    if not source:
        return "none"
    scheme = source.split("://", 1)[0].lower() if "://" in source else "file"
    return {"rtsp": "rtsp", "rtsps": "rtsp", "http": "mjpeg", "https": "mjpeg"}.get(scheme, "file")


@bp.get(
    "/cameras",
    summary="Configured cameras and the health of their pre-event buffers",
    responses={200: CamerasView, 401: ErrorBody},
)
def list_cameras() -> Response:
    k = kadr()
    cams = k.settings.cameras
    buffers = read_buffers(k.redis, [c.id for c in cams])
    backlog = queue_length(k.redis, CAMERA_QUEUE)
    now = time.time()
    out = []
    for c in cams:
        buf = buffers.get(c.id)
        if buf is not None:
            newest = buf.get("newest_ts")
            buf["last_frame_age_seconds"] = round(now - newest, 3) if newest else None
        out.append(
            {
                "id": c.id,
                "source": _source_kind(c.source),
                "fps": c.fps,
                "buffer_seconds": c.buffer_seconds,
                "offsets": list(c.offsets),
                "auth": c.auth,
                "webhook": bool(c.webhook_url),
                "buffer": buf,
                "links": {"events": f"/api/v1/camera/events?camera={c.id}", "webhook": f"/api/v1/camera/{c.id}/events"},
            }
        )
    return jsonify({"cameras": out, "backlog": backlog, "max_backlog": k.settings.camera_max_backlog})
