"""Celery wrappers for the enhance service: payload → blobs → registry model → pipeline → store.

Start with ``celery -A services.enhance.tasks worker -Q enhance --pool prefork -c 1``.
This module is the worker's entrypoint, so it builds the one settings object.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from typing import Any, Callable

from celery.exceptions import TimeLimitExceeded
from celery.signals import task_failure, worker_process_init, worker_process_shutdown

from services.common import images
from services.common.celery_app import create_celery
from services.common.execution import JobFailure, run_job
from services.common.jobs import JobStore, connect
from services.common.logs import setup_logging
from services.common.metrics import CACHE_HITS, FACES, TASK_SECONDS
from services.common.registry import registry
from services.common.schemas import EnhanceParams
from services.common.storage import BlobNotFound, open_store
from services.common.tasks import ENHANCE_PHOTO, ENHANCE_QUEUE, EnhancePhotoTask
from services.common.weights import CATALOG, weight_path
from services.common.workers import Heartbeat
from services.enhance import models as model_loaders
from services.enhance.settings import EnhanceSettings

settings = EnhanceSettings()
setup_logging(settings.log_level, service="enhance")
app = create_celery(settings, name="kadr-enhance")
log = logging.getLogger("kadr.enhance")

_state: dict[str, Any] = {}

# Which upsampler each quality level uses (fast: none, Lanczos resize).
UPSAMPLER_FOR = {"fast": None, "medium": "realesr_general_x4v3", "high": "realesrgan_x2plus"}
# Registry model -> the weight files (catalog names) it is built from.
MODEL_FILES = {"gfpgan": model_loaders.RESTORER_WEIGHTS,
               **{name: (name,) for name in model_loaders.UPSAMPLER_WEIGHTS.values()}}


def missing_files(model: str, models_dir) -> list[str]:
    return [CATALOG[n].filename for n in MODEL_FILES[model] if not weight_path(models_dir, n).is_file()]


def version_of(model: str) -> str:
    return "+".join(CATALOG[n].version for n in MODEL_FILES[model])


def register_models(s: EnhanceSettings) -> None:
    device = model_loaders.select_device(s.device)

    def restorer():
        return model_loaders.build_restorer(s.models_dir, device)

    def upsampler(kind):
        return lambda: model_loaders.build_upsampler(kind, s.models_dir, device,
                                                     tile_pad=s.tile_pad, pre_pad=s.pre_pad)

    registry.register("gfpgan", restorer, version=version_of("gfpgan"),
                      check_files=lambda: missing_files("gfpgan", s.models_dir))
    for kind, name in model_loaders.UPSAMPLER_WEIGHTS.items():
        registry.register(name, upsampler(kind), version=version_of(name),
                          check_files=lambda n=name: missing_files(n, s.models_dir))


@worker_process_init.connect
def _init_process(**_: Any) -> None:
    if s_threads := settings.torch_threads:
        import torch
        torch.set_num_threads(s_threads)
    register_models(settings)
    r = connect(settings.redis_url)
    _state["store"] = JobStore(r, settings.job_ttl_seconds)
    _state["cache"] = connect(settings.cache_redis_url)
    _state["blobs"] = open_store(settings)
    hb = Heartbeat(r, service="enhance", queues=[ENHANCE_QUEUE], models=registry.states,
                   interval=settings.worker_heartbeat_seconds)
    hb.start()
    _state["heartbeat"] = hb
    # Load in the background: the pool's start-up handshake must not wait for weights,
    # and a task that arrives meanwhile blocks on the registry's lock, not a second load.
    threading.Thread(target=registry.warm_up, args=(settings.warm_models,), daemon=True,
                     name="kadr-warmup").start()


@task_failure.connect
def _hard_time_limit(sender=None, exception=None, args=None, **_: Any) -> None:
    """The hard limit kills the pool process, so ``run_job`` never sees it: the parent
    process ends the job here instead of leaving it ``running`` forever."""
    if not isinstance(exception, TimeLimitExceeded) or not args:
        return
    job_id = EnhancePhotoTask.model_validate(args[0]).job_id
    store = JobStore(connect(settings.redis_url), settings.job_ttl_seconds)
    store.transition(job_id, "failed", allowed_from=("queued", "running"), error={
        "code": "time_limit", "message": f"killed at the hard time limit "
                                         f"({settings.task_time_limit_seconds} s)"})


@worker_process_shutdown.connect
def _shutdown_process(**_: Any) -> None:
    if hb := _state.get("heartbeat"):
        hb.stop()


def cache_key(input_sha256: str, params: EnhanceParams) -> str:
    models = ["gfpgan"] + ([UPSAMPLER_FOR[params.quality]] if UPSAMPLER_FOR[params.quality] else [])
    versions = {m: registry.version(m) for m in models}
    blob = json.dumps({"in": input_sha256, "params": params.model_dump(), "models": versions},
                      sort_keys=True)
    return "kadr:cache:enhance:" + hashlib.sha256(blob.encode()).hexdigest()


def enhance_job(job: dict, progress: Callable[[float], None]) -> dict:
    store_blobs = _state["blobs"]
    cache = _state["cache"]
    params = EnhanceParams.model_validate(job["params"])
    inp = job["input"]
    fmt = inp["format"]
    result_key = f"jobs/{job['id']}/result.{images.FORMAT_EXTENSION[fmt]}"

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
    t0 = time.perf_counter()
    try:
        return run_job(_state["store"], p.job_id, service="enhance",
                       max_deliveries=settings.max_deliveries, request_id=request_id,
                       work=enhance_job)
    finally:
        TASK_SECONDS.labels(task=ENHANCE_PHOTO).observe(time.perf_counter() - t0)
