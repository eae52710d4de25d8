"""Camera readers: one thread per camera keeps its ring filled, reconnecting with backoff.

Why the rings live in the camera worker process itself (run with ``--pool threads``):
an event needs frames from 2–4 s *before* it, within ~50 ms of the task starting. The
rings hold tens of MB of encoded frames per camera and change 10–25 times a second;
shipping them through Redis or blob storage would cost a copy per frame and a network
hop per lookup, and a separate buffer daemon would need its own RPC. With the threads
pool the reader threads and the event tasks share one process, so a lookup is a lock,
a bisect and one JPEG decode (or a GOP decode in packet mode). A prefork pool would put
each task in a child process without the rings (or start one set of readers per child,
reading every camera N times), hence threads (solo also works). The heavy parts (JPEG
encode/decode, Laplacian, cascade, FFmpeg) release the GIL.

Sources, chosen from the configured ``source``:

- ``rtsp://``: H.264/H.265 packets as sent (``PacketRing``): no decode while buffering.
- ``http(s)://``: an MJPEG stream (``multipart/x-mixed-replace``), frames kept as JPEG.
- anything else: a video file played in real time and looped (tests, demos), JPEG ring.

Frames are stamped with the worker's clock when they arrive (the same clock, NTP-synced,
as the camera's event time); JPEG sources are thinned to the configured fps. Each
reader's ``health()`` goes out through ``buffer_health.py``.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
from prometheus_client import Counter, Gauge

from services.camera.ring_buffer import JpegFrameRing, PacketRing
from services.contracts.settings import CameraConfig

log = logging.getLogger("kadr.camera")

SOURCE_UP = Gauge(
    "kadr_camera_source_up", "1 while the camera's source delivers frames", ["camera"], multiprocess_mode="livemax"
)
SOURCE_FPS = Gauge(
    "kadr_camera_source_fps", "Frames per second kept from the source", ["camera"], multiprocess_mode="livemax"
)
RECONNECTS = Counter("kadr_camera_source_reconnects_total", "Source (re)connections after a failure", ["camera"])
MAX_MJPEG_FRAME_BYTES = 16 * 2**20


def source_mode(source: str) -> str:
    scheme = source.split("://", 1)[0].lower() if "://" in source else ""
    if scheme in ("rtsp", "rtsps"):
        return "packets"
    if scheme in ("http", "https"):
        return "mjpeg"
    return "file"


def make_ring(cam: CameraConfig, jpeg_quality: int = 90) -> JpegFrameRing | PacketRing:
    if source_mode(cam.source) == "packets":
        return PacketRing(max_seconds=cam.buffer_seconds, max_bytes=cam.buffer_max_bytes)
    return JpegFrameRing(max_seconds=cam.buffer_seconds, max_bytes=cam.buffer_max_bytes, quality=jpeg_quality)


def iter_mjpeg(
    stream: io.BufferedIOBase, boundary: bytes | None = None, max_frame_bytes: int = MAX_MJPEG_FRAME_BYTES
) -> Iterator[bytes]:
    """JPEG payloads of a ``multipart/x-mixed-replace`` body, in order. Parts with a
    Content-Length are read exactly; others up to the next boundary line."""
    marker = b"--" + boundary if boundary else b"--"
    line = stream.readline(4096)
    while line:
        if not line.startswith(marker):
            line = stream.readline(4096)
            continue
        length = None
        while True:
            h = stream.readline(4096)
            if not h:
                return
            h = h.strip()
            if not h:
                break
            name, _, value = h.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if length is not None:
            if length > max_frame_bytes:
                raise ValueError(f"MJPEG part of {length} bytes")
            data = stream.read(length)
            if len(data) < length:
                return
            yield data
            line = stream.readline(4096)
        else:
            parts, size = [], 0
            line = stream.readline(65536)
            while line and not line.startswith(marker):
                parts.append(line)
                size += len(line)
                if size > max_frame_bytes:
                    raise ValueError("MJPEG part without a boundary in sight")
                line = stream.readline(65536)
            data = b"".join(parts).rstrip(b"\r\n")
            if data:
                yield data


_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s'\"]+@")


def redact_credentials(text: str, source: str = "") -> str:
    """``text`` with any ``user:password@`` of a URL replaced by ``***@``, and the
    source's own password removed wherever else it appears (quoted, decoded)."""
    out = _USERINFO.sub(r"\g<scheme>***@", text)
    try:
        password = urllib.parse.urlsplit(source).password
    except ValueError:
        password = None
    for secret in {password or "", urllib.parse.unquote(password or "")} - {""}:
        out = out.replace(secret, "***")
    return out


class SourceReader(threading.Thread):
    """Keeps one camera's ring filled until stopped; never raises out of ``run``."""

    def __init__(
        self,
        cam: CameraConfig,
        ring: JpegFrameRing | PacketRing,
        *,
        timeout: float = 10.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ):
        super().__init__(name=f"kadr-camera-{cam.id}", daemon=True)
        self.cam, self.ring = cam, ring
        self.timeout, self.backoff_initial, self.backoff_max = timeout, backoff_initial, backoff_max
        self.mode = source_mode(cam.source)
        self.stop_event = threading.Event()
        self.up = False
        self.reconnects = 0
        self.last_error = ""
        self._last_ts = 0.0
        self._kept: list[float] = []  # arrival times of recent kept frames, for the fps gauge

    # bookkeeping
    def _stamp(self) -> float:
        ts = max(time.time(), self._last_ts + 1e-6)
        self._last_ts = ts
        return ts

    def _due(self, now: float) -> bool:
        """Thin a JPEG source to the configured fps (5 % slack for jitter)."""
        return not self._kept or now - self._kept[-1] >= 0.95 / self.cam.fps

    def _count(self, ts: float) -> None:
        self._kept.append(ts)
        while self._kept and self._kept[0] < ts - 2.0:
            self._kept.pop(0)
        if not self.up:
            self.up = True
            SOURCE_UP.labels(camera=self.cam.id).set(1)
            log.info("camera source up", extra={"camera": self.cam.id, "mode": self.mode})

    def fps(self) -> float | None:
        k = self._kept
        return round((len(k) - 1) / (k[-1] - k[0]), 3) if len(k) > 1 and k[-1] > k[0] else None

    def health(self) -> dict[str, Any]:
        return {
            "camera": self.cam.id,
            "up": self.up,
            "source_mode": self.mode,
            "source_fps": self.fps(),
            "reconnects": self.reconnects,
            "last_error": self.last_error,
            "published_at": round(time.time(), 3),
            **self.ring.stats(),
        }

    # life cycle
    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> None:
        delay = self.backoff_initial
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                {"mjpeg": self._read_mjpeg, "file": self._read_file, "packets": self._read_rtsp}[self.mode]()
                err = "source ended"
            except Exception as e:  # any failure: mark down, back off, reconnect
                # FFmpeg and requests quote the URL they failed on, credentials included:
                # never into the log or GET /api/v1/cameras.
                err = redact_credentials(f"{type(e).__name__}: {e}", self.cam.source)
            if self.stop_event.is_set():
                break
            if self.up:
                log.warning("camera source down", extra={"camera": self.cam.id, "error": err})
            self.up = False
            self.last_error = err[:300]
            SOURCE_UP.labels(camera=self.cam.id).set(0)
            SOURCE_FPS.labels(camera=self.cam.id).set(0)
            RECONNECTS.labels(camera=self.cam.id).inc()
            self.reconnects += 1
            if time.monotonic() - started > 30:
                delay = self.backoff_initial  # it ran a good while: start backing off afresh
            self.stop_event.wait(delay)
            delay = min(delay * 2, self.backoff_max)

    def _push_bgr(self, frame: np.ndarray) -> None:
        if not isinstance(self.ring, JpegFrameRing):  # make_ring gives JPEG sources one
            raise TypeError(f"a {self.mode} source needs a JPEG ring")
        ts = self._stamp()
        self.ring.push(ts, frame)
        self._count(ts)
        SOURCE_FPS.labels(camera=self.cam.id).set(self.fps() or 0)

    def _read_mjpeg(self) -> None:
        # http.client's response reads lines as they arrive (a buffered reader over
        # requests/urllib3 would wait for whole buffers and deliver frames in bursts).
        import urllib.request

        req = urllib.request.Request(self.cam.source, headers={"User-Agent": "kadr-camera"})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            ctype = resp.headers.get("Content-Type", "")
            boundary = None
            if "boundary=" in ctype:
                boundary = ctype.split("boundary=", 1)[1].split(";")[0].strip().strip('"').encode()
                boundary = boundary.removeprefix(b"--")
            for data in iter_mjpeg(resp, boundary):
                if self.stop_event.is_set():
                    return
                if not self._due(time.time()):
                    continue
                frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                if frame is not None:
                    self._push_bgr(frame)

    def _read_file(self) -> None:
        cap = cv2.VideoCapture(self.cam.source)
        if not cap.isOpened():
            raise OSError(f"cannot open video file {self.cam.source}")
        try:
            file_fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
            step = 1.0 / max(1.0, min(file_fps, 120.0))
            next_at = time.monotonic()
            while not self.stop_event.is_set():
                ok, frame = cap.read()
                if not ok:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)  # loop the clip
                    ok, frame = cap.read()
                    if not ok:
                        raise OSError("the video file has no decodable frame")
                next_at += step
                self.stop_event.wait(max(0.0, next_at - time.monotonic()))  # play in real time
                if self._due(time.time()):
                    self._push_bgr(frame)
        finally:
            cap.release()

    def _read_rtsp(self) -> None:
        if not isinstance(self.ring, PacketRing):  # make_ring gives RTSP sources one
            raise TypeError("an RTSP source needs a packet ring")
        import av

        opts = {"rtsp_transport": "tcp", "timeout": str(int(self.timeout * 1e6))}
        with av.open(self.cam.source, options=opts, timeout=self.timeout) as container:
            stream = container.streams.video[0]
            ctx = stream.codec_context
            self.ring.set_codec(ctx.name, ctx.extradata)
            for packet in container.demux(stream):
                if self.stop_event.is_set():
                    return
                if packet.size == 0:
                    continue
                ts = self._stamp()
                self.ring.push(ts, bytes(packet), keyframe=bool(packet.is_keyframe))
                self._count(ts)
                SOURCE_FPS.labels(camera=self.cam.id).set(self.fps() or 0)
