"""One segment job's work, given its blob store and settings: ``segment`` (decode →
batched DeepLabv3/LR-ASPP → each frame as JPEG and the target class's probability as
uint8 PNG, so stabilization can run again without segmenting again) and ``stabilize``
(one result set, method + params, over the stored probabilities: masks, overlay frames,
overlay and matte videos, metrics). Models come from the registry; the algorithms are the
pure modules beside this one (stabilize, quality, series, video)."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable

import cv2
import numpy as np
import torch

from services.contracts import blob_keys
from services.contracts.records import (
    AnyJob,
    Improvement,
    MetricsDocument,
    SegmentJob,
    SegmentResult,
    SeriesReport,
    StabilizeJob,
    StabilizeResult,
)
from services.contracts.segment_options import SegmentParams
from services.media.video import fps_fraction
from services.runtime.execution import JobFailure
from services.runtime.registry import registry
from services.segment import quality
from services.segment.models import class_probabilities
from services.segment.series import SeriesAccumulator
from services.segment.settings import SegmentSettings
from services.segment.stabilize import binarize, make_stabilizer
from services.segment.video import MatteWriter, Mp4Writer, iter_frames, overlay
from services.store.blobs import BlobNotFound, BlobStore


def _png(a: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", a, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    assert ok
    return buf.tobytes()


def _jpeg(a: np.ndarray, quality_: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", a, [cv2.IMWRITE_JPEG_QUALITY, quality_])
    assert ok
    return buf.tobytes()


def _load(blobs: BlobStore, key: str, flags: int) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(blobs.get_bytes(key), np.uint8), flags)
    if img is None:
        raise JobFailure("corrupt_blob", f"stored file {key.rsplit('/', 1)[-1]} cannot be decoded")
    return img


def segment(
    job: SegmentJob, progress: Callable[[float], None], *, blobs: BlobStore, settings: SegmentSettings
) -> SegmentResult:
    """Decode, segment in batches, store each frame and its class probability."""
    p = SegmentParams.model_validate(job["params"])
    vid, inp = job["id"], job["input"]
    expected = max(1, min(int(inp.get("frames") or 0), settings.max_video_frames))
    t0 = time.perf_counter()
    n, infer_s = 0, 0.0
    batch: list[np.ndarray] = []
    size = (0, 0)

    with registry.use(p.model) as net:
        device = next(net.parameters()).device

        def flush() -> None:
            nonlocal n, infer_s
            t = time.perf_counter()
            x = torch.from_numpy(np.stack(batch)[..., ::-1].copy()).to(device)
            x = x.permute(0, 3, 1, 2).float().div_(255.0)
            probs = class_probabilities(net, x, p.class_id()).cpu().numpy()
            infer_s += time.perf_counter() - t
            for frame, prob in zip(batch, probs):
                blobs.put_bytes(blob_keys.video_frame(vid, n), _jpeg(frame, settings.frame_jpeg_quality))
                blobs.put_bytes(blob_keys.video_prob(vid, n), _png(np.rint(prob * 255).astype(np.uint8)))
                n += 1
            batch.clear()
            progress(0.9 * min(1.0, n / expected))

        try:
            with blobs.open(inp["blob"]) as src:
                for frame in iter_frames(src, p.processing_size, settings.max_video_frames):
                    size = (frame.shape[1], frame.shape[0])
                    batch.append(frame)
                    if len(batch) == p.batch_size:
                        flush()
                if batch:
                    flush()
        except BlobNotFound:
            raise JobFailure("input_missing", "the uploaded video is no longer in storage")
    if n == 0:
        raise JobFailure("invalid_video", "no frame could be decoded")

    truth_frames = 0
    if inp.get("truth_blob"):
        with blobs.open(inp["truth_blob"]) as src:
            for i, frame in enumerate(iter_frames(src, p.processing_size, n)):
                if (frame.shape[1], frame.shape[0]) != size:
                    frame = cv2.resize(frame, size, interpolation=cv2.INTER_NEAREST)
                mask = (cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) > 127).astype(np.uint8) * 255
                blobs.put_bytes(blob_keys.video_truth(vid, i), _png(mask))
                truth_frames = i + 1
        if truth_frames != n:
            raise JobFailure("truth_mismatch", f"the ground-truth video has {truth_frames} frames, the video {n}")
    elapsed = time.perf_counter() - t0
    manifest: SegmentResult = {
        "frames": n,
        "width": size[0],
        "height": size[1],
        "fps": inp.get("fps") or 25.0,
        "has_truth": bool(truth_frames),
        "model": p.model,
        "target_class": p.target_class,
    }
    blobs.put_bytes(blob_keys.video_manifest(vid), json.dumps(manifest).encode())
    return {
        **manifest,
        "timings": {
            "segment_seconds": round(elapsed, 3),
            "inference_seconds": round(infer_s, 3),
            "frames_per_second": round(n / elapsed, 3),
        },
    }


def stabilize(job: StabilizeJob, progress: Callable[[float], None], *, blobs: BlobStore) -> StabilizeResult:
    """One result set over the stored probabilities: masks, overlays, videos, metrics."""
    params = job["params"]
    vid, rid, method = params["video_id"], job["id"], params["method"]
    try:
        manifest = json.loads(blobs.get_bytes(blob_keys.video_manifest(vid)))
    except BlobNotFound:
        raise JobFailure("not_segmented", "the video has no segmentation to stabilize")
    n, w, h = manifest["frames"], manifest["width"], manifest["height"]
    stabilizer = make_stabilizer(method, params.get("params") or {}) if method != "none" else None
    raw_acc, acc = SeriesAccumulator(), SeriesAccumulator()
    t0 = time.perf_counter()
    fps = fps_fraction(manifest["fps"])
    with tempfile.NamedTemporaryFile(suffix=".mp4") as tmp, tempfile.NamedTemporaryFile(suffix=".mov") as mtmp:
        with Mp4Writer(tmp.name, w, h, fps) as writer, MatteWriter(mtmp.name, w, h, fps) as matte:
            for i in range(n):
                frame = _load(blobs, blob_keys.video_frame(vid, i), cv2.IMREAD_COLOR)
                prob = _load(blobs, blob_keys.video_prob(vid, i), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
                truth = (
                    _load(blobs, blob_keys.video_truth(vid, i), cv2.IMREAD_GRAYSCALE) > 127
                    if manifest["has_truth"]
                    else None
                )
                raw = binarize(prob)
                mask = binarize(stabilizer.step(prob, frame)) if stabilizer else raw
                raw_acc.add(raw, frame, truth)
                acc.add(mask, frame, truth)
                shown = overlay(frame, mask)
                mask_u8 = mask.astype(np.uint8) * 255
                blobs.put_bytes(blob_keys.result_mask(vid, rid, i), _png(mask_u8))
                matte.add(mask_u8)
                blobs.put_bytes(blob_keys.result_overlay(vid, rid, i), _jpeg(shown, 85))
                writer.add(shown)
                if i % 10 == 0:
                    progress(0.95 * (i + 1) / n)
        tmp.seek(0)
        blobs.put_stream(blob_keys.result_file(vid, rid, "overlay.mp4"), tmp)
        mtmp.seek(0)
        blobs.put_stream(blob_keys.result_file(vid, rid, "matte.mov"), mtmp)
    raw_r, stable_r = raw_acc.report(), acc.report()
    improvement: Improvement = {
        "instability": quality.improvement_pct(_mean(raw_r, "instability"), _mean(stable_r, "instability")),
        "warped_instability": quality.improvement_pct(
            _mean(raw_r, "warped_iou", lower=True), _mean(stable_r, "warped_iou", lower=True)
        ),
    }
    metrics: MetricsDocument = {
        "result_id": rid,
        "method": method,
        "params": params.get("params") or {},
        "frames": n,
        "raw": raw_r,
        "stable": stable_r,
        "improvement_pct": improvement,
    }
    blobs.put_bytes(blob_keys.result_file(vid, rid, "metrics.json"), json.dumps(metrics, allow_nan=False).encode())
    elapsed = time.perf_counter() - t0
    return {
        "frames": n,
        "method": method,
        "params": params.get("params") or {},
        "summary": {k: v for k, v in stable_r["summary"].items()},
        "raw_summary": {k: v for k, v in raw_r["summary"].items()},
        "improvement_pct": improvement,
        "timings": {"stabilize_seconds": round(elapsed, 3), "frames_per_second": round(n / elapsed, 3)},
    }


def _mean(report: SeriesReport, series: str, *, lower: bool = False) -> float | None:
    """A series' mean (``lower``: as 1 - mean, so lower is better); None for a clip of
    one frame, whose consecutive-frame series are empty."""
    mean = report["summary"][series]["mean"]
    return None if mean is None else (1 - mean if lower else mean)


def remove_partial(job: AnyJob, *, blobs: BlobStore) -> None:
    """What a failed segmentation or stabilization had written (the upload stays)."""
    if job["kind"] == "stabilize":
        blobs.delete_prefix(blob_keys.result_set(job["params"]["video_id"], job["id"]))
        return
    for part in blob_keys.VIDEO_PARTS:
        blobs.delete_prefix(blob_keys.video_part(job["id"], part))
    blobs.delete(blob_keys.video_manifest(job["id"]))
