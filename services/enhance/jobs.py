"""One enhance job's work, given the pool process's connections and settings: the result
cache, else decode the stored photo, run the pure pipeline (services/enhance/pipeline.py)
with the registry's restorer and upsampler under this process's memory budget, encode
the result a band at a time into the blob store, and record the measured rates."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, cast

from services.contracts import blob_keys, redis_keys
from services.contracts.photo_cost import output_format
from services.contracts.records import EnhanceJob, EnhanceResult
from services.contracts.schemas import EnhanceParams
from services.enhance.memory import MemoryWatch, release_free_memory
from services.enhance.settings import EnhanceSettings
from services.enhance.upsamplers import UPSAMPLER_FOR, UPSAMPLER_KIND, bytes_per_pixel
from services.media import images
from services.media.writers import WriterError, open_writer
from services.platform.metrics import CACHE_HITS, FACES
from services.runtime.execution import JobFailure, JobProgress
from services.runtime.registry import registry
from services.runtime.worker_process import WorkerContext
from services.store import task_stats
from services.store.blobs import BlobNotFound, BlobStore

if TYPE_CHECKING:  # for annotations only: the pipeline is imported where it is used
    import numpy as np
    import torch
    from redis import Redis

    from services.enhance import pipeline
    from services.media.metadata import PhotoMeta

# Share of a job's progress before the pipeline (reading, decoding) and after it (storing).
DECODE_SHARE, STORE_SHARE = 0.03, 0.02


def cache_key(input_sha256: str, params: EnhanceParams) -> str:
    up = UPSAMPLER_FOR[params.quality]
    models = ["gfpgan"] + ([up] if up else [])
    versions = {m: registry.version(m) for m in models}
    blob = json.dumps({"in": input_sha256, "params": params.model_dump(), "models": versions}, sort_keys=True)
    return redis_keys.enhance_cache(hashlib.sha256(blob.encode()).hexdigest())


def limits_for(s: EnhanceSettings, device: torch.device) -> pipeline.Limits:
    """The pipeline's limits in this process: the memory budget, and on CUDA the share of
    the device's free memory (read per photo: other processes may hold some)."""
    from services.enhance.pipeline import Limits

    device_budget = None
    if device.type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        device_budget = int(free * s.device_memory_fraction)
    max_tile = s.max_tile or (1024 if device.type == "cuda" else 256)
    return Limits(
        budget_bytes=s.enhance_memory_budget_bytes,
        tile_pad=s.tile_pad,
        max_tile=max_tile,
        tile_floor=s.tile_floor,
        detect_max_pixels=s.detect_max_pixels,
        device_budget_bytes=device_budget,
    )


def costs_for(r: Redis, quality: str, device_kind: str) -> pipeline.Costs:
    """Progress weights from this device kind's measured rates (reference ones before)."""
    from services.contracts.photo_cost import REFERENCE_FACE_SECONDS, REFERENCE_INPUT_MP_SECONDS
    from services.enhance.pipeline import Costs

    face = REFERENCE_FACE_SECONDS
    try:
        face = float(r.hget(redis_keys.photo_rates(device_kind), "face") or face)
    except Exception:  # noqa: BLE001 - only progress weights
        pass
    return Costs(face=face, background_per_mp=REFERENCE_INPUT_MP_SECONDS[quality])


def enhance(job: EnhanceJob, progress: JobProgress, *, ctx: WorkerContext, settings: EnhanceSettings) -> EnhanceResult:
    """One photo: the result cache, else decode → restore and upscale in bands → encode."""
    params = EnhanceParams.model_validate(job["params"])
    inp = job["input"]
    fmt = output_format(inp["format"])
    result_key = blob_keys.enhance_result(job, images.FORMAT_EXTENSION[fmt])

    key = cache_key(inp["sha256"], params)
    hit = ctx.cache.get(key)
    if hit:
        cached = json.loads(hit)
        try:
            ctx.blobs.copy(cached["blob"], result_key)
        except BlobNotFound:
            ctx.cache.delete(key)
        else:
            CACHE_HITS.inc()
            return cast(EnhanceResult, {**cached["result"], "blob": result_key, "cache_hit": True})

    from services.enhance import tiling
    from services.enhance.pipeline import EnhanceError, output_size, run

    t0 = time.perf_counter()
    memory = MemoryWatch()
    img, meta = _decode_input(ctx.blobs, inp["blob"], settings.max_image_pixels)
    decode_s = time.perf_counter() - t0
    progress(DECODE_SHARE)
    out_w, out_h = output_size(img.shape[1], img.shape[0], params)
    photo = _Photo(img, lambda: _decode_input(ctx.blobs, inp["blob"], settings.max_image_pixels)[0])
    del img  # the pipeline holds it alone, and may let it go while it restores faces

    up_name = UPSAMPLER_FOR[params.quality]
    encode_s = 0.0
    with registry.use("gfpgan") as restorer:
        device = restorer.device
        limits = limits_for(settings, device)
        costs = costs_for(ctx.redis, params.quality, device.type)
        try:
            with ctx.blobs.writing(result_key) as f:
                writer = open_writer(fmt, f, out_w, out_h, meta)

                def sink(band: tiling.Band) -> None:
                    nonlocal encode_s
                    t = time.perf_counter()
                    writer.write(band.pixels)
                    encode_s += time.perf_counter() - t

                def tick(fraction: float) -> None:
                    progress(DECODE_SHARE + (1 - DECODE_SHARE - STORE_SHARE) * fraction)

                # An aligned face, or "fast", has no background network: Lanczos only.
                upsampled = up_name if up_name and not params.has_aligned else None
                with registry.use(upsampled) if upsampled else nullcontext() as up:
                    net = None
                    if up is not None and upsampled is not None:
                        net = tiling.Network.of(up, bytes_per_pixel(UPSAMPLER_KIND[upsampled], device))
                    out = run(
                        photo,
                        restorer,
                        net,
                        params,
                        limits=limits,
                        costs=costs,
                        sink=sink,
                        tick=tick,
                        release=memory.phase_ended,
                    )
                t = time.perf_counter()
                writer.close()
                encode_s += time.perf_counter() - t
                progress.check()  # canceled while the last band was written: keep nothing
        except EnhanceError as e:
            raise JobFailure(e.code, e.message)
        except WriterError as e:
            raise JobFailure("output_unwritable", str(e))
    del photo
    memory.phase_ended("background")  # hands the freed heap back too
    size = ctx.blobs.size(result_key)
    FACES.labels(outcome="restored").inc(out.faces_restored)
    FACES.labels(outcome="failed").inc(out.faces_failed)
    timings = {
        **{k: round(v, 4) for k, v in out.timings.items()},
        "decode": round(decode_s, 4),
        "encode": round(encode_s, 4),
    }
    result: EnhanceResult = {
        "blob": result_key,
        "format": fmt,
        "width": out.width,
        "height": out.height,
        "bytes": size,
        "faces_found": out.faces_found,
        "faces_restored": out.faces_restored,
        "faces_failed": out.faces_failed,
        "tile_used": out.tile_used,
        "detect_scale": round(out.detect_scale, 4),
        "upscale": params.upscale,
        "cache_hit": False,
        "timings": timings,
        # Resident memory over the process's size when the photo started, per phase (MiB).
        "memory": memory.report(),
    }
    _record_rates(ctx.redis, device.type, params, out, time.perf_counter() - t0)
    ctx.cache.set(
        key,
        json.dumps({"blob": result_key, "result": {k: v for k, v in result.items() if k not in ("blob", "cache_hit")}}),
        ex=settings.result_cache_ttl_seconds,
    )
    return result


def _decode_input(blobs: BlobStore, key: str, max_pixels: int) -> tuple[np.ndarray, PhotoMeta]:
    """The stored photo's pixels and metadata. The encoded bytes (10-20 MB for 24 MP) are
    not kept: the photo is read again if its pixels are needed again."""
    try:
        data = blobs.get_bytes(key)
    except BlobNotFound:
        raise JobFailure("input_missing", "the uploaded image is no longer in storage")
    try:
        return images.decode_photo(data, max_pixels=max_pixels)
    except images.ImageError as e:
        raise JobFailure(e.code, e.message)
    finally:
        del data
        # Decoding leaves ~2x the photo's pixels of freed buffers in the heap (12 MP:
        # 118 -> 34 MiB resident after this), which would count against detection's peak.
        release_free_memory()


class _Photo:
    """The decoded photo, handed to the pipeline once; asked again, it decodes the stored
    file anew (the pipeline drops the pixels while it restores faces)."""

    def __init__(self, img: np.ndarray, decode: Callable[[], np.ndarray]) -> None:
        self._img: np.ndarray | None = img
        self._decode = decode

    def __call__(self) -> np.ndarray:
        img, self._img = self._img, None
        return img if img is not None else self._decode()


def _record_rates(
    r: Redis, device_kind: str, params: EnhanceParams, out: pipeline.EnhanceResult, seconds: float
) -> None:
    faces = out.faces_restored + out.faces_failed
    face_s = out.timings["restore"] / faces if faces else None
    rest = seconds - out.timings["restore"]
    per_out = rest / (out.width * out.height / 1e6) if not params.has_aligned else None
    task_stats.record_photo(
        r,
        device_kind,
        quality=params.quality,
        upscale=params.upscale,
        seconds_per_output_mp=per_out,
        face_seconds=face_s,
        faces=faces,
        prescale=params.prescale,
    )


def discard(result: Mapping[str, Any], *, blobs: BlobStore) -> None:
    """A result its job no longer takes (canceled or deleted while it was written)."""
    blobs.delete(result["blob"])
