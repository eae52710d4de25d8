"""The camera worker's process: the frame rings and their readers, the buffer health
publisher and the heartbeat (``CameraRuntime``), started once in the process that runs
the tasks (``CameraWorker``).

With ``--pool threads`` that is the main process, when the worker is ready; with
``--pool solo`` or a prefork child (``worker_process_init``) the process that runs the
tasks. The rings must share the process with the event tasks (services/camera/sources.py).
"""

from __future__ import annotations

import ctypes
import logging
import threading
from typing import Any

from celery.signals import worker_process_init, worker_ready, worker_shutdown

from services.camera.buffer_health import BufferCollector, BufferPublisher
from services.camera.models import WARM, register_models
from services.camera.settings import CameraSettings
from services.camera.sources import SourceReader, make_ring
from services.contracts.tasks import CAMERA_QUEUE
from services.runtime import worker_metrics
from services.runtime.registry import registry
from services.store.blobs import open_store
from services.store.camera_events import publish_buffer
from services.store.connection import connect
from services.store.jobs import JobStore
from services.store.workers import Heartbeat

log = logging.getLogger("kadr.camera")


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
    libc.mallopt(-8, 2)  # M_ARENA_MAX


class CameraRuntime:
    """Rings, readers and connections of the process that runs camera tasks."""

    def __init__(self, s: CameraSettings):
        self.s = s
        self.r = connect(s.redis_url)
        self.store = JobStore(self.r, s.job_ttl_seconds)
        self.blobs = open_store(s)
        self.rings = {c.id: make_ring(c, s.ring_jpeg_quality) for c in s.cameras if c.source}
        self.readers = [
            SourceReader(
                c,
                self.rings[c.id],
                timeout=s.source_timeout_seconds,
                backoff_initial=s.reconnect_initial_seconds,
                backoff_max=s.reconnect_max_seconds,
            )
            for c in s.cameras
            if c.source
        ]
        ttl = max(3 * s.buffer_publish_seconds, 3.0)
        self.publisher = BufferPublisher(
            self.readers, lambda cid, h: publish_buffer(self.r, cid, h, ttl), s.buffer_publish_seconds
        )
        # Encoding a clip is the costly part (an 8 s 1080p clip: ~80 MB and seconds of
        # CPU): a few at a time, whatever the events' concurrency. Copies need no bound.
        self.encoders = threading.BoundedSemaphore(s.camera_clip_encoders)
        register_models()
        registry.announce_warm_up(WARM)
        self.heartbeat = Heartbeat(
            self.r, service="camera", queues=[CAMERA_QUEUE], models=registry.states, interval=s.worker_heartbeat_seconds
        )

    def start(self) -> None:
        for reader in self.readers:
            reader.start()
        self.publisher.start()
        self.heartbeat.start()
        threading.Thread(target=registry.warm_up, args=(WARM,), daemon=True, name="kadr-warmup").start()
        log.info("camera buffers started", extra={"cameras": [r.cam.id for r in self.readers]})

    def stop(self) -> None:
        for reader in self.readers:
            reader.stop()
        self.publisher.stop_event.set()
        self.heartbeat.stop()


class CameraWorker:
    """Hooks the camera runtime into Celery's life cycle: one runtime per process, made
    when the process that runs the tasks is known, stopped at shutdown."""

    def __init__(self, settings: CameraSettings):
        _malloc_returns_frames()
        self.settings = settings
        self._runtime: CameraRuntime | None = None
        self._lock = threading.Lock()
        worker_process_init.connect(self._in_pool_process, weak=False)
        worker_ready.connect(self._in_worker, weak=False)
        worker_shutdown.connect(self._stop, weak=False)
        # The collector reads whichever runtime exists at scrape time (threads pool: this process).
        worker_metrics.install(
            settings, "camera", lambda: [BufferCollector(lambda: self._runtime.readers if self._runtime else [])]
        )

    def runtime(self) -> CameraRuntime:
        with self._lock:
            if self._runtime is None:
                rt = CameraRuntime(self.settings)
                rt.start()
                self._runtime = rt
            return self._runtime

    def _in_pool_process(self, **_: Any) -> None:
        # prefork children and the solo pool: the tasks run here.
        self.runtime()

    def _in_worker(self, sender: Any = None, **_: Any) -> None:
        pool = getattr(sender, "pool", None)
        if pool is not None and type(pool).__module__.endswith(".thread"):
            self.runtime()  # threads pool: tasks run in this very process

    def _stop(self, **_: Any) -> None:
        if self._runtime is not None:
            self._runtime.stop()
