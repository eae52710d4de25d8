"""POST /api/v1/enhance (one photo) and /api/v1/enhance/batch (up to max_batch_files).

Every photo is planned at upload (gateway/photo_plans.py): its output must fit
(``max_output_pixels``, the output format's limits), an omitted upscale becomes the
largest up to 2 that fits, and the job gets its time estimate and the time limits its
task carries. The options, defaults and limits a form offers are GET /api/v1/enhance/options
(gateway/api/enhance_options.py)."""

from __future__ import annotations

from typing import Any

from flask import Response, g
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.file import FileStorage
from flask_openapi3.models.tag import Tag
from flask_openapi3.types import ResponseDict
from pydantic import Field

from gateway import callback_urls, quotas
from gateway.api.locations import accepted
from gateway.api.models import RequestModel
from gateway.api.views import batch_view, job_view
from gateway.context import Kadr, kadr
from gateway.dispatch import admit, send
from gateway.errors import ApiError, register_form_model
from gateway.filenames import sanitize_filename
from gateway.photo_plans import enhance_params, item_plan, plan_photo
from gateway.responses import BatchView, ErrorBody, JobView
from gateway.uploads import check_image, store_image
from services.contracts import blob_keys
from services.contracts.schemas import EnhanceParams, Quality
from services.contracts.tasks import ENHANCE_PHOTO, EnhancePhotoTask
from services.platform.metrics import JOBS_ACCEPTED
from services.store import task_stats
from services.store.jobs import new_id

bp = APIBlueprint(
    "enhance", __name__, url_prefix="/api/v1", abp_tags=[Tag(name="enhance")], abp_security=[{"bearer": []}]
)

_ERRORS: ResponseDict = {
    400: ErrorBody,
    401: ErrorBody,
    413: ErrorBody,
    415: ErrorBody,
    429: ErrorBody,
    503: ErrorBody,
    507: ErrorBody,
}


class _Options(EnhanceParams, RequestModel):
    # Left empty, these take the server's configured defaults. pydantic lets a subclass declare a
    # field anew with another type; mypy reads fields as class attributes and sees a bad override.
    quality: Quality | None = None  # type: ignore[assignment]
    max_faces: int | None = Field(
        None,
        ge=0,
        le=100,  # type: ignore[assignment]
        description="faces restored per image, 0–100 (0: background only)",
    )
    upscale: int | None = Field(
        None,
        ge=1,
        le=4,
        description="output scale, 1–4; left out: "  # type: ignore[assignment]
        "the largest up to 2 whose output fits the server's limit",
    )
    callback_url: str | None = callback_urls.field()


class EnhanceForm(_Options):
    file: FileStorage


class EnhanceBatchForm(_Options):
    files: list[FileStorage]


for _m in (EnhanceForm, EnhanceBatchForm):
    register_form_model(_m)


def _params(k: Kadr, form: _Options) -> dict[str, Any]:
    return enhance_params(k, form.model_dump(exclude={"file", "files", "callback_url"}))


@bp.post("/enhance", summary="Restore faces and upscale one photo", responses={202: JobView, **_ERRORS})
def enhance_one(form: EnhanceForm) -> Response:
    k = kadr()
    params = _params(k, form)
    callback = callback_urls.checked(k, form.callback_url)
    k.storage.check()
    quotas.check_in_flight(k, g.owner)
    admit(k, ENHANCE_PHOTO)
    info = check_image(form.file, max_bytes=k.settings.max_upload_bytes, max_pixels=k.settings.max_image_pixels)
    params, est = plan_photo(k, params, info)
    job_id = new_id()
    inp = store_image(form.file, info, k.blobs, blob_keys.photo_input(job_id))
    job = k.jobs.create(
        kind="enhance",
        owner=g.owner,
        params=params,
        input=inp,
        request_id=g.request_id,
        job_id=job_id,
        estimate=est.view(),
        callback_url=callback,
    )
    send(
        k,
        ENHANCE_PHOTO,
        EnhancePhotoTask(
            job_id=job_id, request_id=g.request_id, soft_time_limit=est.soft_time_limit, time_limit=est.time_limit
        ),
    )
    JOBS_ACCEPTED.labels(kind="enhance").inc()
    return accepted(job_view(job), f"/api/v1/jobs/{job_id}")


@bp.post(
    "/enhance/batch", summary="Restore a batch of photos (one job per photo)", responses={202: BatchView, **_ERRORS}
)
def enhance_batch(form: EnhanceBatchForm) -> Response:
    k = kadr()
    params = _params(k, form)
    callback = callback_urls.checked(k, form.callback_url)
    files = [f for f in form.files if f.filename or f.content_length]
    if not files:
        raise ApiError(400, "no_files", "send at least one file in the 'files' field")
    if len(files) > k.settings.max_batch_files:
        raise ApiError(
            400, "too_many_files", f"{len(files)} files sent; at most {k.settings.max_batch_files} per request"
        )
    # A batch like any other: its items wait at the batch step, under the batch quotas.
    k.storage.check()
    quotas.check_new_batch(k, g.owner, len(files))
    # Check every file first: a batch is accepted whole or refused with the reasons.
    infos, problems = [], []
    rates = task_stats.photo_rates(k.redis)
    for f in files:
        try:
            info = check_image(f, max_bytes=k.settings.max_upload_bytes, max_pixels=k.settings.max_image_pixels)
            infos.append((info, *plan_photo(k, params, info, rates)))
        except ApiError as e:
            name = (e.details or {}).get("file") or sanitize_filename(f.filename or "")
            problems.append(
                {
                    "file": name,
                    "code": e.code,
                    "message": f"{name}: {e.message}" if e.code == "output_too_large" else e.message,
                }
            )
    if problems:
        status = (
            413
            if all(p["code"] in ("file_too_large", "too_many_pixels", "output_too_large") for p in problems)
            else 400
        )
        raise ApiError(
            status,
            "invalid_batch",
            f"{len(problems)} of {len(files)} files refused: " + "; ".join(p["message"] for p in problems),
            details=problems,
        )
    # The one-request batch is a batch like any other: created, filled, closed at once.
    batch = k.batches.create(
        kind="enhance", owner=g.owner, params=params, request_id=g.request_id, task=ENHANCE_PHOTO, callback_url=callback
    )
    assert batch is not None  # read back just after its write
    for f, (info, item_params, est) in zip(files, infos):
        inp = store_image(f, info, k.blobs, blob_keys.batch_input(batch["id"], new_id()))
        k.batches.add_photo(batch, input=inp, request_id=g.request_id, plans={"default": item_plan(item_params, est)})
    k.batches.close(batch["id"])
    k.feeder.feed(batch["id"])
    JOBS_ACCEPTED.labels(kind="enhance").inc(len(files))
    batch = k.batches.get(batch["id"])
    assert batch is not None  # this request's batch, just closed
    items = [j for j in k.jobs.get_many(k.batches.item_ids(batch["id"])) if j]
    return accepted(batch_view(batch, items), f"/api/v1/batches/{batch['id']}")
