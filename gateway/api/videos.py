"""A segmented video: its state, result sets (stabilization methods), frames, metrics, overlay,
and deletion. Uploads are gateway/api/video_uploads.py; reports, gateway/api/video_reports.py."""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
from flask import Response, g, jsonify
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag
from flask_openapi3.types import ResponseDict
from PIL import Image
from pydantic import Field, ValidationError

from gateway import callback_urls, quotas
from gateway.api.locations import accepted
from gateway.api.models import Id, RequestModel
from gateway.api.views import result_set_view, video_view
from gateway.blob_files import send_blob
from gateway.context import kadr
from gateway.dispatch import admit, send
from gateway.errors import ApiError, validation_message
from gateway.responses import Deleted, ErrorBody, binary
from gateway.video_responses import MetricsView, ResultSetView, VideoView
from services.contracts import blob_keys, redis_keys
from services.contracts.records import SegmentJob, StabilizeJob
from services.contracts.segment_options import StabilizeRequest, validate_stabilize
from services.contracts.tasks import SEGMENT_STABILIZE, StabilizeTask
from services.platform.metrics import JOBS_ACCEPTED
from services.store.blobs import BlobNotFound
from services.store.jobs import new_id
from services.store.purge import purge_job

bp = APIBlueprint(
    "videos", __name__, url_prefix="/api/v1", abp_tags=[Tag(name="videos")], abp_security=[{"bearer": []}]
)
# What a request that starts work can meet: an upload (video_uploads.py) or a new result set.
ERRORS: ResponseDict = {
    400: ErrorBody,
    401: ErrorBody,
    404: ErrorBody,
    409: ErrorBody,
    413: ErrorBody,
    415: ErrorBody,
    429: ErrorBody,
    503: ErrorBody,
    507: ErrorBody,
}


class VideoPath(RequestModel):
    video_id: Id


class FramePath(VideoPath):
    n: int = Field(..., ge=0)


class FrameQuery(RequestModel):
    kind: Literal["original", "raw", "stable", "overlay"] = "original"
    result: str | None = Field(None, description="result set id (stable/overlay); default: the raw set")
    format: Literal["png", "jpeg"] | None = None


class ResultQuery(RequestModel):
    result: str | None = Field(None, description="result set id; default: the raw set")


def owned_video(video_id: str) -> SegmentJob:
    job = kadr().jobs.get_owned(video_id, g.owner)
    if job is None or job["kind"] != "segment":
        raise ApiError(404, "not_found", f"no video {video_id}")
    return job


@bp.get(
    "/videos/<video_id>",
    summary="State, progress and result sets of a video",
    responses={200: VideoView, 404: ErrorBody},
)
def get_video(path: VideoPath) -> Response:
    job = owned_video(path.video_id)
    return jsonify(video_view(job, kadr().jobs.children(job["id"])))


@bp.post(
    "/videos/<video_id>/stabilize",
    summary="A new result set with another method (no re-segmenting)",
    responses={202: ResultSetView, **ERRORS},
)
def stabilize(path: VideoPath, body: StabilizeRequest) -> Response:
    k = kadr()
    video = owned_video(path.video_id)
    try:
        params = validate_stabilize(body.method, body.params)
    except ValueError as e:
        msg = validation_message(e)[0] if isinstance(e, ValidationError) else str(e)
        raise ApiError(400, "invalid_parameters", msg)
    # A set's own callback_url, else the video's.
    callback = callback_urls.checked(k, body.callback_url) or video.get("callback_url") or ""
    if video["state"] != "succeeded":
        raise ApiError(
            409,
            "not_ready",
            f"the video is {video['state']}; stabilize it once segmented",
            details={"state": video["state"]},
        )
    k.storage.check()
    sets, limit = k.redis.llen(redis_keys.job_children(video["id"])), k.settings.max_result_sets_per_video
    if sets >= limit:
        raise ApiError(
            409,
            "too_many_result_sets",
            f"this video has {sets} result sets (limit {limit}, KADR_MAX_RESULT_SETS_PER_VIDEO); "
            "upload it again for more",
            details={"result_sets": sets, "limit": limit},
        )
    quotas.check_in_flight(k, g.owner)
    admit(k, SEGMENT_STABILIZE)
    rid = new_id()
    job = k.jobs.create(
        kind="stabilize",
        owner=g.owner,
        request_id=g.request_id,
        job_id=rid,
        params={"video_id": video["id"], "method": body.method, "params": params},
        parent_id=video["id"],
        callback_url=callback,
    )
    send(k, SEGMENT_STABILIZE, StabilizeTask(job_id=rid, request_id=g.request_id))
    JOBS_ACCEPTED.labels(kind="stabilize").inc()
    return accepted(result_set_view(job), f"/api/v1/videos/{video['id']}")


def _result_set(video: SegmentJob, result_id: str | None) -> StabilizeJob:
    sets = kadr().jobs.children(video["id"])
    chosen = next((r for r in sets if r["id"] == result_id), None) if result_id else (sets[0] if sets else None)
    if chosen is None:
        raise ApiError(404, "not_found", f"no result set {result_id} on this video")
    if chosen["state"] != "succeeded":
        raise ApiError(409, "not_ready", f"the result set is {chosen['state']}", details={"state": chosen["state"]})
    return chosen


def _image(data: bytes, fmt: str | None, native: str) -> Response:
    if fmt and fmt != native:
        buf = io.BytesIO()
        Image.open(io.BytesIO(data)).save(buf, "PNG" if fmt == "png" else "JPEG", quality=90)
        data, native = buf.getvalue(), fmt
    return Response(data, mimetype=f"image/{native}", headers={"Cache-Control": "private, max-age=3600"})


@bp.get(
    "/videos/<video_id>/frames/<int:n>",
    summary="One frame: original, raw mask, stabilized mask or overlay",
    responses={200: binary("image/*", "the frame"), 404: ErrorBody, 409: ErrorBody},
)
def get_frame(path: FramePath, query: FrameQuery) -> Response:
    k = kadr()
    video = owned_video(path.video_id)
    if video["state"] != "succeeded":
        raise ApiError(409, "not_ready", f"the video is {video['state']}", details={"state": video["state"]})
    result = video["result"]
    assert result is not None  # a segmented video has its manifest
    frames = result["frames"]
    if path.n >= frames:
        raise ApiError(404, "not_found", f"frame {path.n} does not exist; the video has {frames} (0–{frames - 1})")
    vid, n = video["id"], path.n
    try:
        if query.kind == "original":
            return _image(k.blobs.get_bytes(blob_keys.video_frame(vid, n)), query.format, "jpeg")
        if query.kind == "raw":
            prob = np.asarray(Image.open(io.BytesIO(k.blobs.get_bytes(blob_keys.video_prob(vid, n)))))
            buf = io.BytesIO()
            Image.fromarray(((prob >= 128) * 255).astype(np.uint8)).save(buf, "PNG")
            return _image(buf.getvalue(), query.format, "png")
        rid = _result_set(video, query.result)["id"]
        if query.kind == "stable":
            return _image(k.blobs.get_bytes(blob_keys.result_mask(vid, rid, n)), query.format, "png")
        return _image(k.blobs.get_bytes(blob_keys.result_overlay(vid, rid, n)), query.format, "jpeg")
    except BlobNotFound:
        raise ApiError(410, "gone", "that frame's file was removed")


def _result_file(video_id: str, result_id: str | None, name: str) -> tuple[StabilizeJob, str]:
    """The chosen result set of an owned video and the blob key of one of its files."""
    video = owned_video(video_id)
    chosen = _result_set(video, result_id)
    key = blob_keys.result_file(video["id"], chosen["id"], name)
    if not kadr().blobs.exists(key):
        raise ApiError(410, "gone", f"the result set's {name} was removed")
    return chosen, key


@bp.get(
    "/videos/<video_id>/metrics",
    summary="Per-frame IoU/Dice/instability series and summaries",
    responses={200: MetricsView, 404: ErrorBody, 409: ErrorBody, 410: ErrorBody},
)
def get_metrics(path: VideoPath, query: ResultQuery) -> Response:
    _, key = _result_file(path.video_id, query.result, "metrics.json")
    return Response(kadr().blobs.get_bytes(key), mimetype="application/json")


@bp.get(
    "/videos/<video_id>/overlay.mp4",
    summary="The overlay video of a result set (H.264 MP4)",
    responses={200: binary("video/mp4", "the overlay video"), 404: ErrorBody, 409: ErrorBody, 410: ErrorBody},
)
def get_overlay(path: VideoPath, query: ResultQuery) -> Response:
    chosen, key = _result_file(path.video_id, query.result, "overlay.mp4")
    return send_blob(key, "video/mp4", etag=chosen["id"], download_name=f"overlay-{chosen['params']['method']}.mp4")


@bp.delete(
    "/videos/<video_id>",
    summary="Delete a video, its result sets and every file",
    responses={200: Deleted, 404: ErrorBody},
)
def delete_video(path: VideoPath) -> Response:
    k = kadr()
    video = owned_video(path.video_id)
    removed = purge_job(k.jobs, k.blobs, video)
    return jsonify({"id": video["id"], "deleted": True, "files_removed": removed})
