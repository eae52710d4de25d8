"""Video segmentation: upload, result sets (stabilization methods), frames, metrics, overlay."""
from __future__ import annotations

import io
from typing import Literal

import numpy as np
from flask import Response, g, jsonify
from flask_openapi3 import APIBlueprint, FileStorage, Tag
from PIL import Image
from pydantic import Field, ValidationError

from gateway import callback_urls, quotas
from gateway.api.enhance import accepted
from gateway.api.models import Id, RequestModel
from gateway.api.views import result_set_view, video_view
from gateway.blob_files import send_blob
from gateway.context import Kadr, kadr
from gateway.dispatch import admit, send
from gateway.errors import ApiError, register_form_model, validation_message
from gateway.filenames import sanitize_filename
from services.contracts import blob_keys, redis_keys
from services.contracts.schemas import Deleted, ErrorBody, ResultSetView, SegmentCatalog, VideoView, binary
from services.contracts.segment_options import (
    MODELS,
    VOC_CLASSES,
    ModelName,
    SegmentParams,
    StabilizeRequest,
    method_ranges,
    validate_stabilize,
)
from services.contracts.tasks import SEGMENT_STABILIZE, SEGMENT_VIDEO, SegmentVideoTask, StabilizeTask
from services.media.video import VideoError, VideoLimits, check_video
from services.platform.metrics import JOBS_ACCEPTED
from services.store.blobs import BlobNotFound
from services.store.jobs import new_id
from services.store.purge import purge_job

bp = APIBlueprint("videos", __name__, url_prefix="/api/v1", abp_tags=[Tag(name="videos")],
                  abp_security=[{"bearer": []}])
_ERRORS = {400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 409: ErrorBody, 413: ErrorBody,
           415: ErrorBody, 429: ErrorBody, 503: ErrorBody, 507: ErrorBody}


class VideoForm(RequestModel):
    file: FileStorage
    truth: FileStorage | None = Field(None, description="optional ground-truth mask video (white = object)")
    callback_url: str | None = callback_urls.field()
    model: ModelName | None = None
    target_class: str = Field("person", description="a VOC class name, see GET /api/v1/segment/classes")
    processing_size: int | None = Field(None, ge=128, le=1024, description="longer frame side, 128–1024")
    batch_size: int = Field(4, ge=1, le=32, description="frames per inference batch, 1–32")


register_form_model(VideoForm)


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


def _limits(k: Kadr) -> VideoLimits:
    s = k.settings
    return VideoLimits(max_bytes=s.max_video_bytes, max_seconds=s.max_video_seconds,
                       max_frames=s.max_video_frames, max_width=s.max_video_width,
                       max_height=s.max_video_height)


def _check(upload: FileStorage, k: Kadr, field: str) -> dict:
    try:
        info = check_video(upload.stream, _limits(k))
    except VideoError as e:
        name = sanitize_filename(upload.filename or "")
        raise ApiError(e.status, e.code, f"{field} {name}: {e.message}", details={"field": field})
    return info.as_dict()


def owned_video(video_id: str) -> dict:
    job = kadr().jobs.get_owned(video_id, g.owner)
    if job is None or job["kind"] != "segment":
        raise ApiError(404, "not_found", f"no video {video_id}")
    return job


@bp.get("/segment/classes", summary="Target classes, models and stabilization methods with their ranges",
        responses={200: SegmentCatalog})
def classes():
    k = kadr()
    return jsonify({"classes": list(VOC_CLASSES[1:]), "models": MODELS,
                    "default_model": k.settings.segment_default_model,
                    "methods": method_ranges(), "upload": _upload_ranges(k), "limits": _upload_limits(k)})


def _upload_ranges(k: Kadr) -> dict:
    """The upload form's numeric options with this server's defaults, so a client needs no copy."""
    size = SegmentParams.model_json_schema()["properties"]["processing_size"]
    return {"processing_size": {"default": k.settings.segment_processing_size, "minimum": size["minimum"],
                                "maximum": size["maximum"], "description": size["description"]}}


def _upload_limits(k: Kadr) -> dict:
    s = k.settings
    return {"max_bytes": min(s.max_video_bytes, s.max_request_bytes), "max_seconds": s.max_video_seconds,
            "max_frames": s.max_video_frames, "max_width": s.max_video_width,
            "max_height": s.max_video_height}


@bp.post("/videos", summary="Upload a video to segment (mp4, mov, avi, mkv, webm)",
         responses={202: VideoView, **_ERRORS})
def upload_video(form: VideoForm):
    k = kadr()
    try:
        params = SegmentParams(model=form.model or k.settings.segment_default_model,
                               target_class=form.target_class,
                               processing_size=form.processing_size or k.settings.segment_processing_size,
                               batch_size=form.batch_size)
        params.class_id()
    except (ValidationError, ValueError) as e:
        msg = validation_message(e, SegmentParams)[0] if isinstance(e, ValidationError) else str(e)
        raise ApiError(400, "invalid_parameters", msg)
    callback = callback_urls.checked(k, form.callback_url)
    k.storage.check()
    quotas.check_in_flight(k, g.owner, 2)  # the video and its raw result set
    admit(k, SEGMENT_VIDEO)
    info = _check(form.file, k, "file")
    truth = _check(form.truth, k, "truth") if form.truth is not None and form.truth.filename else None
    vid, raw_id = new_id(), new_id()
    key = blob_keys.video_input(vid)
    k.blobs.put_stream(key, form.file.stream)
    inp = {**info, "blob": key,
           "name": sanitize_filename(form.file.filename or "", default="video")}
    if truth:
        truth_key = blob_keys.video_truth_input(vid)
        k.blobs.put_stream(truth_key, form.truth.stream)
        inp.update(truth_blob=truth_key, truth_frames=truth["frames"])
    # The callback hears of the video's end and of each of its result sets' ends.
    job = k.jobs.create(kind="segment", owner=g.owner, params=params.model_dump(), input=inp,
                        request_id=g.request_id, job_id=vid, callback_url=callback)
    raw = k.jobs.create(kind="stabilize", owner=g.owner, request_id=g.request_id, job_id=raw_id,
                        params={"video_id": vid, "method": "none", "params": {}}, parent_id=vid,
                        callback_url=callback)
    # The raw set runs inside the video's task; recorded so a dead worker's raw set is resent.
    k.jobs.set_task(raw_id, SEGMENT_STABILIZE, StabilizeTask(job_id=raw_id, request_id=g.request_id).model_dump())
    send(k, SEGMENT_VIDEO, SegmentVideoTask(job_id=vid, raw_result_id=raw_id, request_id=g.request_id))
    JOBS_ACCEPTED.labels(kind="segment").inc()
    return accepted(video_view(job, [raw]), f"/api/v1/videos/{vid}")


@bp.get("/videos/<video_id>", summary="State, progress and result sets of a video",
        responses={200: VideoView, 404: ErrorBody})
def get_video(path: VideoPath):
    job = owned_video(path.video_id)
    return jsonify(video_view(job, kadr().jobs.children(job["id"])))


@bp.post("/videos/<video_id>/stabilize", summary="A new result set with another method (no re-segmenting)",
         responses={202: ResultSetView, **_ERRORS})
def stabilize(path: VideoPath, body: StabilizeRequest):
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
        raise ApiError(409, "not_ready", f"the video is {video['state']}; stabilize it once segmented",
                       details={"state": video["state"]})
    k.storage.check()
    sets, limit = k.redis.llen(redis_keys.job_children(video["id"])), k.settings.max_result_sets_per_video
    if sets >= limit:
        raise ApiError(409, "too_many_result_sets",
                       f"this video has {sets} result sets (limit {limit}, KADR_MAX_RESULT_SETS_PER_VIDEO); "
                       "upload it again for more", details={"result_sets": sets, "limit": limit})
    quotas.check_in_flight(k, g.owner)
    admit(k, SEGMENT_STABILIZE)
    rid = new_id()
    job = k.jobs.create(kind="stabilize", owner=g.owner, request_id=g.request_id, job_id=rid,
                        params={"video_id": video["id"], "method": body.method, "params": params},
                        parent_id=video["id"], callback_url=callback)
    send(k, SEGMENT_STABILIZE, StabilizeTask(job_id=rid, request_id=g.request_id))
    JOBS_ACCEPTED.labels(kind="stabilize").inc()
    return accepted(result_set_view(job), f"/api/v1/videos/{video['id']}")


def _result_set(video: dict, result_id: str | None) -> dict:
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


@bp.get("/videos/<video_id>/frames/<int:n>", summary="One frame: original, raw mask, stabilized mask or overlay",
        responses={200: binary("image/*", "the frame"), 404: ErrorBody, 409: ErrorBody})
def get_frame(path: FramePath, query: FrameQuery):
    k = kadr()
    video = owned_video(path.video_id)
    if video["state"] != "succeeded":
        raise ApiError(409, "not_ready", f"the video is {video['state']}", details={"state": video["state"]})
    frames = video["result"]["frames"]
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


def _result_file(video_id: str, result_id: str | None, name: str) -> tuple[dict, str]:
    """The chosen result set of an owned video and the blob key of one of its files."""
    video = owned_video(video_id)
    chosen = _result_set(video, result_id)
    key = blob_keys.result_file(video["id"], chosen["id"], name)
    if not kadr().blobs.exists(key):
        raise ApiError(410, "gone", f"the result set's {name} was removed")
    return chosen, key


@bp.get("/videos/<video_id>/metrics", summary="Per-frame IoU/Dice/instability series and summaries",
        responses={200: {"description": "the metrics document (per-frame series and summaries)",
                         "content": {"application/json": {"schema": {"type": "object"}}}},
                   404: ErrorBody, 409: ErrorBody, 410: ErrorBody})
def get_metrics(path: VideoPath, query: ResultQuery):
    _, key = _result_file(path.video_id, query.result, "metrics.json")
    return Response(kadr().blobs.get_bytes(key), mimetype="application/json")


@bp.get("/videos/<video_id>/overlay.mp4", summary="The overlay video of a result set (H.264 MP4)",
        responses={200: binary("video/mp4", "the overlay video"), 404: ErrorBody, 409: ErrorBody, 410: ErrorBody})
def get_overlay(path: VideoPath, query: ResultQuery):
    chosen, key = _result_file(path.video_id, query.result, "overlay.mp4")
    return send_blob(key, "video/mp4", etag=chosen["id"], download_name=f"overlay-{chosen['params']['method']}.mp4")


@bp.delete("/videos/<video_id>", summary="Delete a video, its result sets and every file",
           responses={200: Deleted, 404: ErrorBody})
def delete_video(path: VideoPath):
    k = kadr()
    video = owned_video(path.video_id)
    removed = purge_job(k.jobs, k.blobs, video)
    return jsonify({"id": video["id"], "deleted": True, "files_removed": removed})
