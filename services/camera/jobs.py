"""One camera event's work, given the process's camera runtime and settings: the frames
nearest each offset before the event time → the sharpest (the snow photo) → plate crops →
blobs under ``camera/<event id>/`` → the event's result; then the event clip
(services/camera/clips.py), cut from the ring once the camera's ``clip_after_seconds``
past the event have arrived. A clip that cannot be made is reported on the event, never
fails it. Process RSS is logged at the start and end of every event."""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, cast

import av
import cv2
import numpy as np
import psutil
from prometheus_client import Counter

from services.camera import events
from services.camera.clips import ClipInfo, write_jpeg_clip, write_packet_clip
from services.camera.plates import find_plates
from services.camera.ring_buffer import PacketRing
from services.camera.settings import CameraSettings
from services.camera.worker import CameraRuntime
from services.contracts import blob_keys
from services.contracts.records import EventJob
from services.contracts.settings import CameraConfig
from services.runtime.execution import JobFailure
from services.store.blobs import BlobNotFound

log = logging.getLogger("kadr.camera")
CLIPS = Counter(
    "kadr_camera_clips_total",
    "Event clips by outcome (ready, missing: no frames in the window, failed: the frames could not be written as MP4)",
    ["camera", "outcome"],
)


def _rss() -> int:
    return cast(int, psutil.Process().memory_info().rss)  # psutil has no type information


def _jpeg(img: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise JobFailure("encode_failed", "an image of the event could not be encoded")
    return buf.tobytes()


def _uploads(rt: CameraRuntime, job: EventJob) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for kind, meta in ((job.get("input") or {}).get("images") or {}).items():
        try:
            data = rt.blobs.get_bytes(meta["blob"])
        except BlobNotFound:
            raise JobFailure("input_missing", f"the uploaded image {kind} is no longer in storage")
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise JobFailure("invalid_image", f"the uploaded image {kind} cannot be decoded")
        out[kind] = img
    return out


def process_event(
    rt: CameraRuntime, job: EventJob, progress: Callable[[float], None], *, settings: CameraSettings
) -> dict[str, Any]:
    """One event: frames nearest each offset → sharpest → plate crops → blobs → clip."""
    params = job["params"]
    cam_id = params["camera"]
    rss0 = _rss()
    log.info("camera event started", extra={"camera": cam_id, "rss_bytes": rss0})
    cam = settings.camera(cam_id)
    if cam is None:
        raise JobFailure("unknown_camera", f"camera {cam_id} is no longer configured")
    offsets = list(params.get("offsets") or cam.offsets)
    t0 = time.perf_counter()
    ring = rt.rings.get(cam_id)
    lookups = (
        ring.frames_at(offsets, float(params["ts"]), tolerance=settings.lookup_tolerance_seconds)
        if ring is not None
        else [None] * len(offsets)
    )
    lookup_s = time.perf_counter() - t0
    uploads = _uploads(rt, job)
    if not any(lookups) and not uploads:
        held = ring.stats() if ring is not None else None
        raise JobFailure(
            "no_frames",
            "no buffered frame near the event time and no uploaded image",
            details={"buffer": {k: held[k] for k in ("oldest_ts", "newest_ts")} if held else None},
        )
    progress(0.3)
    t1 = time.perf_counter()
    outcome = events.analyse(params, offsets, lookups, uploads, find_plates=find_plates, max_plates=settings.max_plates)
    analyse_s = time.perf_counter() - t1
    keys: dict[str, str] = {}
    try:
        for kind, img in outcome.images.items():
            key = blob_keys.event_image(job["id"], kind)
            rt.blobs.put_bytes(key, _jpeg(img, settings.output_jpeg_quality))
            keys[kind] = key
        progress(0.7)
        clip = event_clip(rt, cam, job["id"], float(params["ts"]), settings=settings)
    except BaseException:
        for key in keys.values():  # a full disk: no half set of images (the uploads stay)
            rt.blobs.delete(key)
        raise
    rss1 = _rss()
    log.info("camera event done", extra={"camera": cam_id, "rss_bytes": rss1, "rss_delta_bytes": rss1 - rss0})
    return {
        **outcome.result,
        "images": keys,
        "clip": clip,
        "rss_bytes": {"start": rss0, "end": rss1},
        "timings": {"lookup_seconds": round(lookup_s, 4), "analyse_seconds": round(analyse_s, 4)},
    }


def event_clip(
    rt: CameraRuntime, cam: CameraConfig, event_id: str, event_ts: float, *, settings: CameraSettings
) -> dict[str, Any] | None:
    """Cut ``camera/<event id>/clip.mp4`` from the camera's ring; what it covers, or why not."""
    before, after = cam.clip_window()
    ring = rt.rings.get(cam.id)
    if ring is None or before + after <= 0:
        return None
    start, end = event_ts - before, event_ts + after
    asked = {"start_ts": round(start, 3), "end_ts": round(end, 3)}
    # Frames are stamped with this worker's clock: wait on it for the "after" part, and
    # no longer than the slack past it (a stalled or lost source).
    ring.wait_for_ts(end, end + settings.camera_clip_wait_slack_seconds - time.time())
    guard: AbstractContextManager[object]
    if isinstance(ring, PacketRing):
        params, packets = ring.clip_packets(start, end)
        found, guard = bool(packets), contextlib.nullcontext()

        def write(path: str) -> ClipInfo:
            assert params is not None  # found: clip_packets gives params with any packet
            return write_packet_clip(path, params, packets)
    else:
        frames = ring.clip_frames(start, end)
        found, guard = bool(frames), rt.encoders

        def write(path: str) -> ClipInfo:
            return write_jpeg_clip(path, frames, crf=settings.camera_clip_crf)

    if not found:
        CLIPS.labels(camera=cam.id, outcome="missing").inc()
        log.warning("event clip missing", extra={"camera": cam.id, "event": event_id, **asked})
        return {
            "state": "missing",
            "asked": asked,
            "reason": "the buffer held no frame between the clip's start and end",
        }
    key = blob_keys.event_clip(event_id)
    t0 = time.perf_counter()
    with tempfile.NamedTemporaryFile(suffix=".mp4") as tmp:
        try:
            with guard:
                info = write(tmp.name)
        except (ValueError, av.error.FFmpegError) as e:
            CLIPS.labels(camera=cam.id, outcome="failed").inc()
            log.warning("event clip failed", extra={"camera": cam.id, "event": event_id, "error": str(e)[:300]})
            return {"state": "failed", "asked": asked, "reason": f"the buffered frames could not be written: {e}"[:300]}
        tmp.seek(0)
        size = rt.blobs.put_stream(key, tmp)
    CLIPS.labels(camera=cam.id, outcome="ready").inc()
    seconds = round(time.perf_counter() - t0, 4)
    log.info(
        "event clip ready",
        extra={
            "camera": cam.id,
            "event": event_id,
            "bytes": size,
            "frames": info.frames,
            "mode": info.mode,
            "write_seconds": seconds,
        },
    )
    return {"state": "ready", "blob": key, "bytes": size, "asked": asked, **info.as_dict(), "write_seconds": seconds}
