"""Celery wrappers for the enhance service: payload → blobs → registry model → pipeline → store.

Start with ``celery -A services.enhance.tasks worker -Q enhance --pool prefork -c 1``.
This module is the worker's entrypoint, so it builds the one settings object.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Callable

from services.common import images, weights
from services.common.celery_app import create_celery
from services.common.execution import JobFailure, run_job
from services.common.logs import setup_logging
from services.common.metrics import CACHE_HITS, FACES
from services.common.registry import registry
from services.common.schemas import EnhanceParams
from services.common.storage import BlobNotFound
from services.common.tasks import ENHANCE_PHOTO, ENHANCE_QUEUE, EnhancePhotoTask
from services.common.worker_process import WorkerProcess
from services.enhance import models as model_loaders
from services.enhance.settings import EnhanceSettings

settings = EnhanceSettings()
setup_logging(settings.log_level, service="enhance")
app = create_celery(settings, name="kadr-enhance")
log = logging.getLogger("kadr.enhance")


# Which upsampler each quality level uses (fast: none, Lanczos resize).
UPSAMPLER_FOR = {"fast": None, "medium": "realesr_general_x4v3", "high": "realesrgan_x2plus"}
# Registry model -> the weight files (catalog names) it is built from.
MODEL_FILES = {"gfpgan": model_loaders.RESTORER_WEIGHTS,
               **{name: (name,) for name in model_loaders.UPSAMPLER_WEIGHTS.values()}}


def register_models(s: EnhanceSettings) -> None:
    device = model_loaders.select_device(s.device)

    def restorer():
        return model_loaders.build_restorer(s.models_dir, device)

    def upsampler(kind):
        return lambda: model_loaders.build_upsampler(kind, s.models_dir, device,
                                                     tile_pad=s.tile_pad, pre_pad=s.pre_pad)

    registry.register("gfpgan", restorer, version=weights.version_of(MODEL_FILES["gfpgan"]),
                      check_files=lambda: weights.missing(s.models_dir, MODEL_FILES["gfpgan"]))
    for kind, name in model_loaders.UPSAMPLER_WEIGHTS.items():
        registry.register(name, upsampler(kind), version=weights.version_of(MODEL_FILES[name]),
                          check_files=lambda n=name: weights.missing(s.models_dir, MODEL_FILES[n]))


worker = WorkerProcess(settings, service="enhance", queues=[ENHANCE_QUEUE],
                       register_models=lambda: register_models(settings),
                       warm=settings.warm_models, torch_threads=settings.torch_threads)


def cache_key(input_sha256: str, params: EnhanceParams) -> str:
    models = ["gfpgan"] + ([UPSAMPLER_FOR[params.quality]] if UPSAMPLER_FOR[params.quality] else [])
    versions = {m: registry.version(m) for m in models}
    blob = json.dumps({"in": input_sha256, "params": params.model_dump(), "models": versions},
                      sort_keys=True)
    return "kadr:cache:enhance:" + hashlib.sha256(blob.encode()).hexdigest()


def enhance_job(job: dict, progress: Callable[[float], None]) -> dict:
    store_blobs = worker.ctx.blobs
    cache = worker.ctx.cache
    params = EnhanceParams.model_validate(job["params"])
    inp = job["input"]
    fmt = inp["format"]
    # A batch keeps every file under its own folder: retention removes a batch in one go.
    base = f"batches/{job['batch_id']}/results/{job['id']}" if job.get("batch_id") else f"jobs/{job['id']}"
    result_key = f"{base}/result.{images.FORMAT_EXTENSION[fmt]}"

    key = cache_key(inp["sha256"], params)
    hit = cache.get(key)
    if hit:
        cached = json.loads(hit)
        try:
            store_blobs.copy(cached["blob"], result_key)
        except BlobNotFound:
            cache.delete(key)
        else:
            CACHE_HITS.inc()
            return {**cached["result"], "blob": result_key, "cache_hit": True}

    t0 = time.perf_counter()
    try:
        data = store_blobs.get_bytes(inp["blob"])
    except BlobNotFound:
        raise JobFailure("input_missing", "the uploaded image is no longer in storage")
    try:
        img = images.decode_bgr(data, max_pixels=settings.max_image_pixels)
    except images.ImageError as e:
        raise JobFailure(e.code, e.message)
    decode_s = time.perf_counter() - t0
    progress(0.1)

    from services.enhance.pipeline import EnhanceError, enhance

    up_name = UPSAMPLER_FOR[params.quality]
    with registry.use("gfpgan") as restorer:
        try:
            if up_name:
                with registry.use(up_name) as up:
                    out = enhance(img, restorer, up, params, tile_floor=settings.tile_floor)
            else:
                out = enhance(img, restorer, None, params, tile_floor=settings.tile_floor)
        except EnhanceError as e:
            raise JobFailure(e.code, e.message)
    progress(0.9)
    t1 = time.perf_counter()
    encoded = images.encode_image(out.image, fmt)
    size = store_blobs.put_bytes(result_key, encoded)
    encode_s = time.perf_counter() - t1
    FACES.labels(outcome="restored").inc(out.faces_restored)
    FACES.labels(outcome="failed").inc(out.faces_failed)
    h, w = out.image.shape[:2]
    result = {
        "blob": result_key, "format": fmt, "width": w, "height": h, "bytes": size,
        "faces_found": out.faces_found, "faces_restored": out.faces_restored,
        "faces_failed": out.faces_failed, "tile_used": out.tile_used, "cache_hit": False,
        "timings": {**{k: round(v, 4) for k, v in out.timings.items()},
                    "decode": round(decode_s, 4), "encode": round(encode_s, 4)},
    }
    cache.set(key, json.dumps({"blob": result_key, "result": {k: v for k, v in result.items()
                                                               if k not in ("blob", "cache_hit")}}),
              ex=settings.result_cache_ttl_seconds)
    return result


@app.task(name=ENHANCE_PHOTO, bind=True)
def enhance_photo(self, payload: dict) -> str:
    p = EnhancePhotoTask.model_validate(payload)
    request_id = p.request_id or (self.request.get("kadr_request_id") or "")
    return run_job(worker.ctx.store, p.job_id, service="enhance", task=ENHANCE_PHOTO,
                   max_deliveries=settings.max_deliveries, request_id=request_id,
                   work=enhance_job, feed=worker.ctx.feeder.feed)
