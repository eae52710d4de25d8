"""How each camera's ring and source are doing, told outside the worker: published to
Redis for the gateway's camera API (``BufferPublisher``) and read at scrape time for
Prometheus (``BufferCollector``), both from the process that holds the rings."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.camera.sources import SourceReader

log = logging.getLogger("kadr.camera")


class BufferPublisher(threading.Thread):
    """Writes every reader's health to Redis each ``interval`` (the gateway reads it)."""

    def __init__(self, readers: list[SourceReader], publish: Callable[[str, dict[str, Any]], None], interval: float):
        super().__init__(name="kadr-camera-health", daemon=True)
        self.readers, self.publish, self.interval = readers, publish, interval
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            for r in self.readers:
                try:
                    self.publish(r.cam.id, r.health())
                except Exception as e:  # Redis down: the key expires and the API shows no buffer
                    log.debug("buffer health not published: %s", e)
            self.stop_event.wait(self.interval)


class BufferCollector(Collector):
    """Each ring's state, read at scrape time from the process that holds the rings."""

    def __init__(self, readers: Callable[[], list[SourceReader]]):
        self.readers = readers

    def collect(self) -> Iterable[Metric]:
        def gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=["camera"])

        held_bytes = gauge("kadr_camera_buffer_bytes", "Bytes held by the pre-event ring")
        held_s = gauge("kadr_camera_buffer_seconds", "Seconds of past an event can reach")
        frames = gauge("kadr_camera_buffer_frames", "Frames held (packet mode: with the lead-in GOP)")
        budget = gauge("kadr_camera_buffer_max_bytes", "The ring's memory budget")
        age = gauge("kadr_camera_last_frame_age_seconds", "Seconds since the newest buffered frame")
        dropped = CounterMetricFamily(
            "kadr_camera_buffer_dropped_frames", "Frames dropped from the ring", labels=["camera", "reason"]
        )
        now = time.time()
        for r in self.readers():
            s = r.ring.stats()
            cam = [r.cam.id]
            held_bytes.add_metric(cam, s["bytes"])
            held_s.add_metric(cam, s["seconds_held"])
            frames.add_metric(cam, s["frames"])
            budget.add_metric(cam, s["max_bytes"])
            if s["newest_ts"] is not None:
                age.add_metric(cam, max(0.0, now - s["newest_ts"]))
            for reason in ("age", "budget", "undecodable"):
                dropped.add_metric(cam + [reason], s[f"dropped_{reason}_total"])
        return [held_bytes, held_s, frames, budget, age, dropped]
