"""Taking a video in: POST /api/v1/videos (the upload form, its parameters and the PyAV
probe of each file against this server's limits), and GET /api/v1/segment/classes, what
that form and the stabilize request offer, with this server's defaults and limits."""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.file import FileStorage
from flask_openapi3.models.tag import Tag
from pydantic import Field, ValidationError

from gateway import callback_urls, quotas
from gateway.api.locations import accepted
from gateway.api.models import RequestModel
from gateway.api.operation_ids import named_for
from gateway.api.videos import ERRORS
from gateway.api.views import video_view
from gateway.context import Kadr, kadr
from gateway.dispatch import admit, send
from gateway.errors import ApiError, register_form_model, validation_message
from gateway.filenames import sanitize_filename
from gateway.uploads import stream_of
from gateway.video_responses import SegmentCatalog, VideoView
from services.contracts import blob_keys
from services.contracts.segment_options import MODELS, VOC_CLASSES, ModelName, SegmentParams, method_ranges
from services.contracts.tasks import SEGMENT_STABILIZE, SEGMENT_VIDEO, SegmentVideoTask, StabilizeTask
from services.media.video import VideoError, VideoLimits, check_video
from services.platform.metrics import JOBS_ACCEPTED
from services.store.jobs import new_id

bp = APIBlueprint(
    "video_uploads",
    __name__,
    url_prefix="/api/v1",
    abp_tags=[Tag(name="videos")],
    abp_security=[{"bearer": []}],
    operation_id_callback=named_for("videos"),
)


class VideoForm(RequestModel):
    file: FileStorage
    truth: FileStorage | None = Field(None, description="optional ground-truth mask video (white = object)")
    callback_url: str | None = callback_urls.field()
    model: ModelName | None = None
    target_class: str = Field("person", description="a VOC class name, see GET /api/v1/segment/classes")
    processing_size: int | None = Field(None, ge=128, le=1024, description="longer frame side, 128–1024")
    batch_size: int = Field(4, ge=1, le=32, description="frames per inference batch, 1–32")


register_form_model(VideoForm)


def _limits(k: Kadr) -> VideoLimits:
    s = k.settings
    return VideoLimits(
        max_bytes=s.max_video_bytes,
        max_seconds=s.max_video_seconds,
        max_frames=s.max_video_frames,
        max_width=s.max_video_width,
        max_height=s.max_video_height,
    )


def _check(upload: FileStorage, k: Kadr, field: str) -> dict[str, Any]:
    try:
        info = check_video(stream_of(upload), _limits(k))
    except VideoError as e:
        name = sanitize_filename(upload.filename or "")
        raise ApiError(e.status, e.code, f"{field} {name}: {e.message}", details={"field": field})
    return info.as_dict()


@bp.get(
    "/segment/classes",
    summary="Target classes, models and stabilization methods with their ranges",
    responses={200: SegmentCatalog},
)
def classes() -> Response:
    k = kadr()
    return jsonify(
        {
            "classes": list(VOC_CLASSES[1:]),
            "models": MODELS,
            "default_model": k.settings.segment_default_model,
            "methods": method_ranges(),
            "upload": _upload_ranges(k),
            "limits": _upload_limits(k),
        }
    )


def _upload_ranges(k: Kadr) -> dict[str, Any]:
    """The upload form's numeric options with this server's defaults, so a client needs no copy."""
    size = SegmentParams.model_json_schema()["properties"]["processing_size"]
    return {
        "processing_size": {
            "default": k.settings.segment_processing_size,
            "minimum": size["minimum"],
            "maximum": size["maximum"],
            "description": size["description"],
        }
    }


def _upload_limits(k: Kadr) -> dict[str, Any]:
    s = k.settings
    return {
        "max_bytes": min(s.max_video_bytes, s.max_request_bytes),
        "max_seconds": s.max_video_seconds,
        "max_frames": s.max_video_frames,
        "max_width": s.max_video_width,
        "max_height": s.max_video_height,
    }


@bp.post(
    "/videos", summary="Upload a video to segment (mp4, mov, avi, mkv, webm)", responses={202: VideoView, **ERRORS}
)
def upload_video(form: VideoForm) -> Response:
    k = kadr()
    try:
        # The configured default model is a plain string: validated here, like the form's.
        params = SegmentParams.model_validate(
            {
                "model": form.model or k.settings.segment_default_model,
                "target_class": form.target_class,
                "processing_size": form.processing_size or k.settings.segment_processing_size,
                "batch_size": form.batch_size,
            }
        )
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
    k.blobs.put_stream(key, stream_of(form.file))
    inp = {**info, "blob": key, "name": sanitize_filename(form.file.filename or "", default="video")}
    if truth and form.truth is not None:
        truth_key = blob_keys.video_truth_input(vid)
        k.blobs.put_stream(truth_key, stream_of(form.truth))
        inp.update(truth_blob=truth_key, truth_frames=truth["frames"])
    # The callback hears of the video's end and of each of its result sets' ends.
    job = k.jobs.create(
        kind="segment",
        owner=g.owner,
        params=params.model_dump(),
        input=inp,
        request_id=g.request_id,
        job_id=vid,
        callback_url=callback,
    )
    raw = k.jobs.create(
        kind="stabilize",
        owner=g.owner,
        request_id=g.request_id,
        job_id=raw_id,
        params={"video_id": vid, "method": "none", "params": {}},
        parent_id=vid,
        callback_url=callback,
    )
    # The raw set runs inside the video's task; recorded so a dead worker's raw set is resent.
    k.jobs.set_task(raw_id, SEGMENT_STABILIZE, StabilizeTask(job_id=raw_id, request_id=g.request_id).model_dump())
    send(k, SEGMENT_VIDEO, SegmentVideoTask(job_id=vid, raw_result_id=raw_id, request_id=g.request_id))
    JOBS_ACCEPTED.labels(kind="segment").inc()
    return accepted(video_view(job, [raw]), f"/api/v1/videos/{vid}")
