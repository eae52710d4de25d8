"""Celery side of the camera service: the pre-event buffers and ``camera.event``.

Start with ``celery -A services.camera.tasks worker -Q camera --pool threads -c 4`` (as compose
and the Procfile do: events wait on their clip's after-part, so a few run at once).

The worker process *is* the frame buffer: at start it opens one reader thread per
configured camera (services/camera/sources.py explains why the rings must share the
process with the event tasks) and a thread that publishes each ring's health to Redis
for ``GET /api/v1/cameras``. With ``--pool threads`` that happens once, in the main
process, when the worker is ready; with ``--pool solo`` or a prefork child
(``worker_process_init``) it happens in the process that runs the tasks. Run exactly
one camera worker per set of cameras: a second one would buffer the cameras again and
take half the events, which it could still serve, at twice the reading cost.

``camera.event``: frames nearest each offset before the event time → sharpest (the
snow photo) → plate crops → blobs under ``camera/<event id>/`` → the event record's
result; then the event clip (services/camera/clips.py): the task waits for the
camera's ``clip_after_seconds`` past the event to arrive (the threads pool makes that
wait a sleeping thread, not a process) and cuts ``clip.mp4`` from the ring. A clip
that cannot be made is reported on the event, never fails it. Process RSS is logged
at the start and end of every event. When the camera has
a ``webhook_url`` the finished event is POSTed there (HMAC-signed with the camera's
secret, same scheme as inbound) by the janitor from the outbox, with retries and
exponential backoff; it is queued in the same Redis script that records the end, so no
restart of any process loses it (services/store/outbox.py, delivery.py).
"""
from __future__ import annotations

import contextlib
import ctypes
import logging
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import av
import cv2
import numpy as np
import psutil
from celery.signals import worker_process_init, worker_ready, worker_shutdown
from prometheus_client import Counter

from services.camera import events
from services.camera.clips import write_jpeg_clip, write_packet_clip
from services.camera.plates import REGISTRY_NAME, find_plates, load_cascade
from services.camera.ring_buffer import PacketRing
from services.camera.settings import CameraSettings
from services.camera.sources import BufferCollector, BufferPublisher, SourceReader, make_ring
from services.contracts import blob_keys
from services.contracts.tasks import CAMERA_EVENT, CAMERA_QUEUE, CameraEventTask
from services.platform.celery_app import create_celery
from services.platform.logs import setup_logging
from services.runtime import worker_metrics
from services.runtime.execution import JobFailure, run_job
from services.runtime.registry import registry
from services.store.blobs import BlobNotFound, open_store
from services.store.camera_events import publish_buffer
from services.store.jobs import JobStore, connect
from services.store.workers import Heartbeat

CLIPS = Counter("kadr_camera_clips_total", "Event clips by outcome (ready, missing: no frames in the "
                "window, failed: the frames could not be written as MP4)", ["camera", "outcome"])

def _malloc_returns_frames() -> None:
    """glibc raises its mmap threshold to the largest block freed so far, after which
    every decoded frame (2.7 MB at 720p) and encoder buffer is carved from the heap and
    the heap keeps it: with clips encoded every few seconds the worker's RSS settled
    ~120 MB higher and kept creeping (720p25 soak: 289 → 338 MiB in a minute). A fixed
    1 MiB threshold maps big blocks afresh and returns them on free (soak: flat at 270
    MiB, max 276); two arenas as in every kadr worker. Set here rather than in the
    environment so every way of starting the worker (compose, make up, tests) gets it."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc: nothing to tune
    libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD (a fixed one also stops the dynamic raise)
    libc.mallopt(-8, 2)        # M_ARENA_MAX


_malloc_returns_frames()
settings = CameraSettings()
setup_logging(settings.log_level, service="camera")
app = create_celery(settings, name="kadr-camera")
log = logging.getLogger("kadr.camera")


class CameraRuntime:
    """Rings, readers and connections of the process that runs camera tasks."""

    def __init__(self, s: CameraSettings):
        self.s = s
        self.r = connect(s.redis_url)
        self.store = JobStore(self.r, s.job_ttl_seconds)
        self.blobs = open_store(s)
        self.rings = {c.id: make_ring(c, s.ring_jpeg_quality) for c in s.cameras if c.source}
        self.readers = [SourceReader(c, self.rings[c.id], timeout=s.source_timeout_seconds,
                                     backoff_initial=s.reconnect_initial_seconds,
                                     backoff_max=s.reconnect_max_seconds)
                        for c in s.cameras if c.source]
        ttl = max(3 * s.buffer_publish_seconds, 3.0)
        self.publisher = BufferPublisher(self.readers, lambda cid, h: publish_buffer(self.r, cid, h, ttl),
                                         s.buffer_publish_seconds)
        if REGISTRY_NAME not in registry.names():
            registry.register(REGISTRY_NAME, load_cascade, version=f"opencv-{cv2.__version__}")
        registry.announce_warm_up([REGISTRY_NAME])
        self.heartbeat = Heartbeat(self.r, service="camera", queues=[CAMERA_QUEUE], models=registry.states,
                                   interval=s.worker_heartbeat_seconds)

    def start(self) -> None:
        for reader in self.readers:
            reader.start()
        self.publisher.start()
        self.heartbeat.start()
        threading.Thread(target=registry.warm_up, args=([REGISTRY_NAME],), daemon=True,
                         name="kadr-warmup").start()
        log.info("camera buffers started", extra={"cameras": [r.cam.id for r in self.readers]})

    def stop(self) -> None:
        for reader in self.readers:
            reader.stop()
        self.publisher.stop_event.set()
        self.heartbeat.stop()


_runtime: CameraRuntime | None = None
_runtime_lock = threading.Lock()


def start_runtime() -> CameraRuntime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            rt = CameraRuntime(settings)
            rt.start()
            _runtime = rt
        return _runtime


@worker_process_init.connect(weak=False)
def _in_pool_process(**_: Any) -> None:
    # prefork children and the solo pool: the tasks run here.
    start_runtime()


@worker_ready.connect(weak=False)
def _in_worker(sender=None, **_: Any) -> None:
    pool = getattr(sender, "pool", None)
    if pool is not None and type(pool).__module__.endswith(".thread"):
        start_runtime()  # threads pool: tasks run in this very process


# The collector reads whichever runtime exists at scrape time (threads pool: this process).
worker_metrics.install(settings, "camera",
                       lambda: [BufferCollector(lambda: _runtime.readers if _runtime else [])])


@worker_shutdown.connect(weak=False)
def _stop(**_: Any) -> None:
    if _runtime is not None:
        _runtime.stop()


def _rss() -> int:
    return psutil.Process().memory_info().rss


def _jpeg(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, settings.output_jpeg_quality])
    if not ok:
        raise JobFailure("encode_failed", "an image of the event could not be encoded")
    return buf.tobytes()


def _uploads(rt: CameraRuntime, job: dict) -> dict[str, np.ndarray]:
    out = {}
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


def process_event(rt: CameraRuntime, job: dict, progress: Callable[[float], None]) -> dict:
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
    lookups = (ring.frames_at(offsets, float(params["ts"]), tolerance=settings.lookup_tolerance_seconds)
               if ring is not None else [None] * len(offsets))
    lookup_s = time.perf_counter() - t0
    uploads = _uploads(rt, job)
    if not any(lookups) and not uploads:
        held = ring.stats() if ring is not None else None
        raise JobFailure("no_frames", "no buffered frame near the event time and no uploaded image",
                         details={"buffer": {k: held[k] for k in ("oldest_ts", "newest_ts")} if held else None})
    progress(0.3)
    t1 = time.perf_counter()
    outcome = events.analyse(params, offsets, lookups, uploads, find_plates=find_plates,
                             max_plates=settings.max_plates)
    analyse_s = time.perf_counter() - t1
    keys: dict[str, str] = {}
    try:
        for kind, img in outcome.images.items():
            key = blob_keys.event_image(job["id"], kind)
            rt.blobs.put_bytes(key, _jpeg(img))
            keys[kind] = key
        progress(0.7)
        clip = event_clip(rt, cam, job["id"], float(params["ts"]))
    except BaseException:
        for key in keys.values():  # a full disk: no half set of images (the uploads stay)
            rt.blobs.delete(key)
        raise
    rss1 = _rss()
    log.info("camera event done", extra={"camera": cam_id, "rss_bytes": rss1,
                                         "rss_delta_bytes": rss1 - rss0})
    return {**outcome.result, "images": keys, "clip": clip, "rss_bytes": {"start": rss0, "end": rss1},
            "timings": {"lookup_seconds": round(lookup_s, 4), "analyse_seconds": round(analyse_s, 4)}}


_encoders = threading.BoundedSemaphore(settings.camera_clip_encoders)


def event_clip(rt: CameraRuntime, cam, event_id: str, event_ts: float) -> dict | None:
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
    if isinstance(ring, PacketRing):
        params, packets = ring.clip_packets(start, end)
        found, guard = bool(packets), contextlib.nullcontext()

        def write(path: str):
            return write_packet_clip(path, params, packets)
    else:
        frames = ring.clip_frames(start, end)
        # Encoding is the costly part (an 8 s 1080p clip: ~80 MB and seconds of CPU): a
        # few at a time, whatever the events' concurrency. Copies need no such bound.
        found, guard = bool(frames), _encoders

        def write(path: str):
            return write_jpeg_clip(path, frames, crf=settings.camera_clip_crf)
    if not found:
        CLIPS.labels(camera=cam.id, outcome="missing").inc()
        log.warning("event clip missing", extra={"camera": cam.id, "event": event_id, **asked})
        return {"state": "missing", "asked": asked,
                "reason": "the buffer held no frame between the clip's start and end"}
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
    log.info("event clip ready", extra={"camera": cam.id, "event": event_id, "bytes": size,
                                        "frames": info.frames, "mode": info.mode, "write_seconds": seconds})
    return {"state": "ready", "blob": key, "bytes": size, "asked": asked, **info.as_dict(),
            "write_seconds": seconds}


@app.task(name=CAMERA_EVENT)
def camera_event(payload: dict) -> str:
    p = CameraEventTask.model_validate(payload)
    rt = start_runtime()
    # Its end reaches the camera's webhook_url through the outbox, queued with the state
    # change itself: a worker restart cannot lose it (services/upkeep/delivery.py).
    return run_job(rt.store, p.job_id, service="camera", task=CAMERA_EVENT,
                   max_deliveries=settings.max_deliveries, request_id=p.request_id,
                   work=lambda job, prog: process_event(rt, job, prog))
