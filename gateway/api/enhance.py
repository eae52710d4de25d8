"""POST /api/v1/enhance (one photo) and /api/v1/enhance/batch (up to max_batch_files)."""
from __future__ import annotations

from flask import g, jsonify
from flask_openapi3 import APIBlueprint, FileStorage, Tag
from pydantic import Field, ValidationError

from gateway.api.models import RequestModel
from gateway.api.views import batch_view, job_view
from gateway.context import Kadr, kadr
from gateway.dispatch import admit, send
from gateway.errors import ApiError, register_form_model, validation_message
from gateway.uploads import check_image, store_image
from services.common.jobs import new_id
from services.common.metrics import JOBS_ACCEPTED
from services.common.schemas import EnhanceParams, ErrorBody, JobView, BatchView, Quality
from services.common.tasks import ENHANCE_PHOTO, EnhancePhotoTask

bp = APIBlueprint("enhance", __name__, url_prefix="/api/v1", abp_tags=[Tag(name="enhance")],
                  abp_security=[{"bearer": []}])

_ERRORS = {400: ErrorBody, 401: ErrorBody, 413: ErrorBody, 415: ErrorBody, 503: ErrorBody}


class _Options(EnhanceParams, RequestModel):
    # Left empty, these take the server's configured defaults.
    quality: Quality | None = None
    max_faces: int | None = Field(None, ge=0, le=100,
                                  description="faces restored per image, 0–100 (0: background only)")


class EnhanceForm(_Options):
    file: FileStorage


class EnhanceBatchForm(_Options):
    files: list[FileStorage]


for _m in (EnhanceForm, EnhanceBatchForm):
    register_form_model(_m)


def enhance_params(k: Kadr, raw: dict) -> dict:
    """Photo options over the server's defaults, validated (400 naming the range).
    An option left out, or sent empty (None), takes the default; max_faces 0 is a choice."""
    merged = {"quality": k.settings.enhance_default_quality, "max_faces": k.settings.enhance_default_max_faces,
              **{key: v for key, v in raw.items() if v is not None}}
    try:
        return EnhanceParams(**merged).model_dump()
    except ValidationError as e:
        msg, details = validation_message(e, EnhanceParams)
        raise ApiError(400, "invalid_parameters", msg, details=details)


def _params(k: Kadr, form: _Options) -> dict:
    return enhance_params(k, form.model_dump(exclude={"file", "files"}))


def accepted(body: dict, location: str):
    resp = jsonify(body)
    resp.status_code = 202
    resp.headers["Location"] = location
    return resp


@bp.post("/enhance", summary="Restore faces and upscale one photo",
         responses={202: JobView, **_ERRORS})
def enhance_one(form: EnhanceForm):
    k = kadr()
    params = _params(k, form)
    admit(k, ENHANCE_PHOTO)
    info = check_image(form.file, max_bytes=k.settings.max_upload_bytes,
                       max_pixels=k.settings.max_image_pixels)
    job_id = new_id()
    inp = store_image(form.file, info, k.blobs, f"jobs/{job_id}/input")
    job = k.jobs.create(kind="enhance", owner=g.owner, params=params, input=inp,
                        request_id=g.request_id, job_id=job_id)
    send(k, ENHANCE_PHOTO, EnhancePhotoTask(job_id=job_id, request_id=g.request_id))
    JOBS_ACCEPTED.labels(kind="enhance").inc()
    return accepted(job_view(job), f"/api/v1/jobs/{job_id}")


@bp.post("/enhance/batch", summary="Restore a batch of photos (one job per photo)",
         responses={202: BatchView, **_ERRORS})
def enhance_batch(form: EnhanceBatchForm):
    k = kadr()
    params = _params(k, form)
    files = [f for f in form.files if f.filename or f.content_length]
    if not files:
        raise ApiError(400, "no_files", "send at least one file in the 'files' field")
    if len(files) > k.settings.max_batch_files:
        raise ApiError(400, "too_many_files",
                       f"{len(files)} files sent; at most {k.settings.max_batch_files} per request")
    admit(k, ENHANCE_PHOTO, len(files))
    # Check every file first: a batch is accepted whole or refused with the reasons.
    infos, problems = [], []
    for f in files:
        try:
            infos.append(check_image(f, max_bytes=k.settings.max_upload_bytes,
                                     max_pixels=k.settings.max_image_pixels))
        except ApiError as e:
            problems.append({"file": e.details["file"], "code": e.code, "message": e.message})
    if problems:
        status = 413 if all(p["code"] in ("file_too_large", "too_many_pixels") for p in problems) else 400
        raise ApiError(status, "invalid_batch",
                       f"{len(problems)} of {len(files)} files refused: "
                       + "; ".join(p["message"] for p in problems), details=problems)
    # The one-request batch is a batch like any other: created, filled, closed at once.
    batch = k.batches.create(kind="enhance", owner=g.owner, params=params, request_id=g.request_id,
                             task=ENHANCE_PHOTO)
    for f, info in zip(files, infos):
        inp = store_image(f, info, k.blobs, f"batches/{batch['id']}/inputs/{new_id()}")
        k.batches.add_photo(batch, input=inp, request_id=g.request_id)
    k.batches.close(batch["id"])
    k.feeder.feed(batch["id"])
    JOBS_ACCEPTED.labels(kind="enhance").inc(len(files))
    batch = k.batches.get(batch["id"])
    items = [j for j in k.jobs.get_many(k.batches.item_ids(batch["id"])) if j]
    return accepted(batch_view(batch, items), f"/api/v1/batches/{batch['id']}")
