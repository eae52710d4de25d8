"""POST /api/v1/enhance (one photo) and /api/v1/enhance/batch (up to max_batch_files).

Every photo is planned at upload: its output must fit (``max_output_pixels``, the output
format's limits), an omitted upscale becomes the largest up to 2 that fits, and the job
gets its time estimate and the time limits its task carries. GET /api/v1/enhance/options
tells a client (the web UI's Photos page) the options, this server's defaults and limits."""
from __future__ import annotations

import re
from typing import get_args

from flask import g, jsonify
from flask_openapi3 import APIBlueprint, FileStorage, Tag
from pydantic import BaseModel, Field, ValidationError

from gateway import callback_urls, quotas
from gateway.api.models import RequestModel
from gateway.api.views import batch_view, job_view
from gateway.context import Kadr, kadr
from gateway.dispatch import admit, send
from gateway.errors import ApiError, register_form_model, validation_message
from gateway.filenames import sanitize_filename
from gateway.uploads import check_image, store_image
from services.contracts import blob_keys, photo_cost, schemas
from services.contracts.photo_cost import Estimate
from services.contracts.schemas import BatchCreate, BatchView, EnhanceParams, ErrorBody, JobView, Quality, VariantSpec
from services.contracts.tasks import ENHANCE_PHOTO, EnhancePhotoTask
from services.media import images
from services.platform.metrics import JOBS_ACCEPTED
from services.store import task_stats
from services.store.jobs import new_id

bp = APIBlueprint("enhance", __name__, url_prefix="/api/v1", abp_tags=[Tag(name="enhance")],
                  abp_security=[{"bearer": []}])

_ERRORS = {400: ErrorBody, 401: ErrorBody, 413: ErrorBody, 415: ErrorBody, 429: ErrorBody, 503: ErrorBody,
           507: ErrorBody}


class _Options(EnhanceParams, RequestModel):
    # Left empty, these take the server's configured defaults.
    quality: Quality | None = None
    max_faces: int | None = Field(None, ge=0, le=100,
                                  description="faces restored per image, 0–100 (0: background only)")
    upscale: int | None = Field(None, ge=1, le=4, description="output scale, 1–4; left out: the largest "
                                "up to 2 whose output fits the server's limit")
    callback_url: str | None = callback_urls.field()


class EnhanceForm(_Options):
    file: FileStorage


class EnhanceBatchForm(_Options):
    files: list[FileStorage]


for _m in (EnhanceForm, EnhanceBatchForm):
    register_form_model(_m)


# ---- GET /enhance/options: what a form needs before the first upload ----

QUALITY_DESCRIPTIONS = {"fast": "faces only, background resized",
                        "medium": "faces + general background model",
                        "high": "faces + RealESRGAN x2plus (slowest)"}
# The sizes a form offers, within schemas.TILE_RANGE (0: the upsampler's default).
TILE_CHOICES = (0, 256, 384, 512)
FLAG_DESCRIPTIONS = {"only_center_face": "restore only the face nearest the centre"}


class QualityChoice(BaseModel):
    value: Quality
    description: str


class RangeOption(BaseModel):
    default: int | float
    minimum: int | float
    maximum: int | float
    description: str = ""


class UpscaleOption(BaseModel):
    default: int | None = Field(None, description="null: left out, each photo gets the largest scale up to "
                                "automatic_max whose output fits max_output_pixels")
    choices: list[int]
    automatic_max: int
    description: str = ""


class TileOption(BaseModel):
    default: int
    choices: list[int] = Field(..., description="the sizes a form offers (0: the upsampler's default)")
    minimum: int
    maximum: int
    description: str = ""


class FlagOption(BaseModel):
    default: bool
    description: str = ""


class PhotoFormats(BaseModel):
    input: list[str] = Field(..., description="formats an upload may be in")
    output: list[str] = Field(..., description="formats a result can be asked in (?format=)")


class VariantRules(BaseModel):
    max_count: int
    name_pattern: str
    name_max_length: int


class PhotoLimits(BaseModel):
    max_upload_bytes: int = Field(..., description="one photo")
    max_image_pixels: int = Field(..., description="one photo")
    max_output_pixels: int = Field(..., description="one result: input pixels × upscale²")
    max_batch_files: int = Field(..., description="files in one request")
    max_request_bytes: int = Field(..., description="one request, all its files")
    max_batch_items: int = Field(..., description="items in one batch: photos × variants")


class EnhanceCatalog(BaseModel):
    """The photo options with this server's defaults and limits, so a client needs no copy."""
    qualities: list[QualityChoice]
    default_quality: str = Field(..., description="what an omitted quality becomes")
    upscale: UpscaleOption
    weight: RangeOption
    max_faces: RangeOption
    tile: TileOption
    flags: dict[str, FlagOption] = Field(..., description="on/off options: only_center_face, has_aligned, "
                                         "prescale")
    formats: PhotoFormats
    variants: VariantRules
    limits: PhotoLimits


def enhance_catalog(k: Kadr) -> dict:
    s = k.settings
    props = EnhanceParams.model_json_schema()["properties"]
    weight, faces, tile = props["weight"], props["max_faces"], props["tile"]
    name = VariantSpec.model_json_schema()["properties"]["name"]["pattern"]
    body = EnhanceCatalog(
        qualities=[QualityChoice(value=q, description=QUALITY_DESCRIPTIONS[q]) for q in get_args(Quality)],
        default_quality=s.enhance_default_quality,
        upscale=UpscaleOption(choices=list(photo_cost.UPSCALES), automatic_max=photo_cost.AUTO_UPSCALE_MAX,
                              description=_Options.model_fields["upscale"].description or ""),
        weight=RangeOption(default=weight["default"], minimum=weight["minimum"], maximum=weight["maximum"],
                           description=weight["description"]),
        max_faces=RangeOption(default=s.enhance_default_max_faces, minimum=faces["minimum"],
                              maximum=faces["maximum"], description=faces["description"]),
        tile=TileOption(default=tile["default"], choices=list(TILE_CHOICES), minimum=schemas.TILE_RANGE[0],
                        maximum=schemas.TILE_RANGE[1], description=tile["description"]),
        flags={f: FlagOption(default=props[f]["default"],
                             description=props[f].get("description") or FLAG_DESCRIPTIONS.get(f, ""))
               for f in ("only_center_face", "has_aligned", "prescale")},
        formats=PhotoFormats(input=list(images.FORMAT_MIME), output=list(images.OUTPUT_FORMATS)),
        variants=VariantRules(max_count=BatchCreate.model_json_schema()["properties"]["variants"]["maxItems"],
                              name_pattern=name, name_max_length=int(re.search(r"\{1,(\d+)\}", name)[1])),
        limits=PhotoLimits(max_upload_bytes=min(s.max_upload_bytes, s.max_request_bytes),
                           max_image_pixels=s.max_image_pixels, max_output_pixels=s.max_output_pixels,
                           max_batch_files=s.max_batch_files, max_request_bytes=s.max_request_bytes,
                           max_batch_items=s.max_batch_items))
    return body.model_dump()


@bp.get("/enhance/options", summary="Photo options with this server's defaults and limits",
        responses={200: EnhanceCatalog, 401: ErrorBody, 403: ErrorBody})
def options():
    return jsonify(enhance_catalog(kadr()))


def enhance_params(k: Kadr, raw: dict) -> dict:
    """Photo options over the server's defaults, validated (400 naming the range).
    An option left out, or sent empty (None), takes the default; max_faces 0 is a choice.
    ``upscale`` left out stays None: each photo gets the largest that fits (plan_photo)."""
    merged = {"quality": k.settings.enhance_default_quality, "max_faces": k.settings.enhance_default_max_faces,
              **{key: v for key, v in raw.items() if v is not None}}
    try:
        params = EnhanceParams(**merged).model_dump()
    except ValidationError as e:
        msg, details = validation_message(e, EnhanceParams)
        raise ApiError(400, "invalid_parameters", msg, details=details)
    if merged.get("upscale") is None:
        params["upscale"] = None
    return params


def plan_photo(k: Kadr, params: dict, info: images.ImageInfo, rates: dict | None = None) -> tuple[dict, Estimate]:
    """The params one photo runs with (its upscale resolved against the output limits:
    413 ``output_too_large`` naming the largest upscale that fits) and its estimate."""
    s = k.settings
    limit = photo_cost.output_limit(photo_cost.output_format(info.format), max_output_pixels=s.max_output_pixels,
                                    memory_budget_bytes=s.enhance_memory_budget_bytes)
    try:
        upscale = 1 if params.get("has_aligned") else \
            photo_cost.resolve_upscale(info.width, info.height, params.get("upscale"), limit)
    except photo_cost.OutputTooLarge as e:
        raise ApiError(413, "output_too_large", e.message,
                       details={"largest_upscale": e.largest, "max_output_pixels": e.limit.max_pixels,
                                "max_side": e.limit.max_side, "width": info.width, "height": info.height})
    params = {**params, "upscale": upscale if params.get("upscale") is None else params["upscale"]}
    est = photo_cost.estimate(info.width, info.height, params,
                              task_stats.photo_rates(k.redis) if rates is None else rates,
                              factor=s.photo_time_limit_factor, floor_soft=s.task_soft_time_limit_seconds,
                              floor_hard=s.task_time_limit_seconds, cap=s.photo_time_limit_cap_seconds)
    return params, est


def _params(k: Kadr, form: _Options) -> dict:
    return enhance_params(k, form.model_dump(exclude={"file", "files", "callback_url"}))


def item_plan(params: dict, est: Estimate) -> dict:
    """What BatchStore.add_photo writes for one item: its params, estimate and limits."""
    return {"params": params, "estimate": est.view(),
            "task": {"soft_time_limit": est.soft_time_limit, "time_limit": est.time_limit}}


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
    callback = callback_urls.checked(k, form.callback_url)
    k.storage.check()
    quotas.check_in_flight(k, g.owner)
    admit(k, ENHANCE_PHOTO)
    info = check_image(form.file, max_bytes=k.settings.max_upload_bytes,
                       max_pixels=k.settings.max_image_pixels)
    params, est = plan_photo(k, params, info)
    job_id = new_id()
    inp = store_image(form.file, info, k.blobs, blob_keys.photo_input(job_id))
    job = k.jobs.create(kind="enhance", owner=g.owner, params=params, input=inp,
                        request_id=g.request_id, job_id=job_id, estimate=est.view(), callback_url=callback)
    send(k, ENHANCE_PHOTO, EnhancePhotoTask(job_id=job_id, request_id=g.request_id,
                                            soft_time_limit=est.soft_time_limit, time_limit=est.time_limit))
    JOBS_ACCEPTED.labels(kind="enhance").inc()
    return accepted(job_view(job), f"/api/v1/jobs/{job_id}")


@bp.post("/enhance/batch", summary="Restore a batch of photos (one job per photo)",
         responses={202: BatchView, **_ERRORS})
def enhance_batch(form: EnhanceBatchForm):
    k = kadr()
    params = _params(k, form)
    callback = callback_urls.checked(k, form.callback_url)
    files = [f for f in form.files if f.filename or f.content_length]
    if not files:
        raise ApiError(400, "no_files", "send at least one file in the 'files' field")
    if len(files) > k.settings.max_batch_files:
        raise ApiError(400, "too_many_files",
                       f"{len(files)} files sent; at most {k.settings.max_batch_files} per request")
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
            problems.append({"file": name, "code": e.code, "message": f"{name}: {e.message}"
                             if e.code == "output_too_large" else e.message})
    if problems:
        status = 413 if all(p["code"] in ("file_too_large", "too_many_pixels", "output_too_large")
                            for p in problems) else 400
        raise ApiError(status, "invalid_batch",
                       f"{len(problems)} of {len(files)} files refused: "
                       + "; ".join(p["message"] for p in problems), details=problems)
    # The one-request batch is a batch like any other: created, filled, closed at once.
    batch = k.batches.create(kind="enhance", owner=g.owner, params=params, request_id=g.request_id,
                             task=ENHANCE_PHOTO, callback_url=callback)
    for f, (info, item_params, est) in zip(files, infos):
        inp = store_image(f, info, k.blobs, blob_keys.batch_input(batch["id"], new_id()))
        k.batches.add_photo(batch, input=inp, request_id=g.request_id,
                            plans={"default": item_plan(item_params, est)})
    k.batches.close(batch["id"])
    k.feeder.feed(batch["id"])
    JOBS_ACCEPTED.labels(kind="enhance").inc(len(files))
    batch = k.batches.get(batch["id"])
    items = [j for j in k.jobs.get_many(k.batches.item_ids(batch["id"])) if j]
    return accepted(batch_view(batch, items), f"/api/v1/batches/{batch['id']}")
