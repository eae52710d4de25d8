"""Pre-event frame rings: the last ``max_seconds`` of a camera, in bounded memory.

An ANPR/snow event asks for frames from 2, 3 and 4 s *before* it arrived, so every
camera must keep its recent past. Kept raw, that past is what broke the origin
service: a 1080p BGR frame is 1920 × 1080 × 3 = 6.2 MB, so 10 s at 25 fps is
1.56 GB per camera (its 720p version, 2.76 MB a frame, needed ~810 MB for 10 s and
was cut to 3 s / 243 MB, losing the 4 s frame). Nothing here ever holds a raw
frame; only the few frames an event asks for are decoded, when it asks.

- ``JpegFrameRing`` stores each frame JPEG-encoded: at quality 90 a 1080p frame of
  a busy, snowy street is ~0.36 MB, so 10 s of 1080p25 take ~90 MB (720p: ~43 MB),
  17× less than raw. Works for any source, but the worker pays a decode of the
  camera stream and a JPEG encode per frame: about half a core per 1080p camera.
- ``PacketRing`` stores what an H.264/H.265 camera already sends: the encoded
  packets. A 4 Mbit/s 1080p stream is ~0.5 MB a second, ~5.7 MB for the 10 s window
  plus its lead-in GOP, 270× less than raw. Buffering costs no decode and no encode,
  a few microseconds of bookkeeping per packet; a lookup decodes from the keyframe
  at or before the asked time up to it, the way NVRs cut pre-event segments, so an
  event costs up to one GOP of decoding per asked frame. Eviction drops whole GOPs,
  so what remains always starts at a keyframe and stays decodable.

bench/camera_buffer.py measures both (bytes per second, CPU per camera, event
latency). Both rings bound memory twice: by time (``max_seconds``, what an event
can reach) and by bytes (``max_bytes``, what the process can afford); the oldest
frames go first and every drop is counted by reason, so a budget that is too
small for the window shows up as ``dropped_budget_total`` and a short
``seconds_held`` instead of silent loss.

Threading: one reader thread pushes while event lookups read. A lock guards the
bookkeeping; lookups copy out references to the (immutable) encoded bytes they
need under the lock and decode outside it, so a slow decode never stalls the
camera reader.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

import cv2
import numpy as np

if TYPE_CHECKING:  # PyAV is imported where it decodes (see _decode_span)
    from av.video.codeccontext import VideoCodecContext
    from av.video.frame import VideoFrame

DEFAULT_MAX_SECONDS = 10.0
# Sized for 10 s of 1080p25: JPEG q90 of a busy scene is ≤ ~0.4 MB a frame, and an
# 8 Mbit/s stream with a 4 s GOP of lead-in is ≤ 14 MB.
DEFAULT_JPEG_MAX_BYTES = 128 * 2**20
DEFAULT_PACKET_MAX_BYTES = 24 * 2**20
# Charged per stored frame on top of its payload (the bytes object header, the
# timestamp float and the container slot), so the budget bounds real memory even
# for a static scene whose P-frames are a few dozen bytes.
ENTRY_OVERHEAD_BYTES = 128

_EDGE_S = 1e-6

Lookup = tuple[float, np.ndarray]  # (frame timestamp, BGR uint8 frame)


class FrameRing(Protocol):
    """What event handling needs from a ring, whatever it stores.

    ``push`` is not part of it: what a source hands over differs by mode
    (``JpegFrameRing.push(ts, frame_bgr)``, ``PacketRing.push(ts, data, keyframe=)``).
    """

    max_seconds: float
    max_bytes: int

    def nearest(self, ts: float) -> Lookup | None: ...

    def frames_at(
        self, offsets_before_event: Sequence[float], event_ts: float, *, tolerance: float | None = None
    ) -> list[Lookup | None]: ...

    def timestamps(self) -> list[float]: ...

    def wait_for_ts(self, ts: float, timeout: float) -> bool: ...

    def stats(self) -> dict[str, Any]: ...


def nearest_index(timestamps: Sequence[float], ts: float) -> int | None:
    """Index of the timestamp nearest ``ts`` in an increasing sequence; ties go to
    the earlier frame (an event's "N s before" should not peek past the asked time)."""
    if not timestamps:
        return None
    i = bisect.bisect_left(timestamps, ts)
    if i == 0:
        return 0
    if i == len(timestamps):
        return i - 1
    return i - 1 if ts - timestamps[i - 1] <= timestamps[i] - ts else i


def _within(tolerance: float | None, asked: float, found: float) -> bool:
    return tolerance is None or abs(found - asked) <= tolerance


class _RingBase:
    """Limits, the lock, push-order checks and drop counters shared by both rings."""

    def __init__(self, max_seconds: float, max_bytes: int) -> None:
        if not (max_seconds > 0 and math.isfinite(max_seconds)):
            raise ValueError(f"max_seconds must be a positive number, got {max_seconds!r}")
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes!r}")
        self.max_seconds = float(max_seconds)
        self.max_bytes = int(max_bytes)
        # A condition on the ring's lock: a clip's "after" part waits for a push, not a poll.
        self._lock = threading.Condition(threading.Lock())
        self._bytes = 0
        self._last_ts: float | None = None  # newest pushed, even if it was dropped at once
        self._pushed = 0
        self._dropped_age = 0
        self._dropped_budget = 0
        self._dropped_undecodable = 0

    def _accept_ts(self, ts: float) -> float:
        """Called under the lock before storing a frame."""
        ts = float(ts)
        if not math.isfinite(ts):
            raise ValueError(f"frame timestamp must be finite, got {ts!r}")
        if self._last_ts is not None and ts <= self._last_ts:
            # Lookups bisect on time; a clock that goes back (camera reconnect,
            # NTP step) must be handled by the source, not papered over here.
            raise ValueError(f"frame timestamps must increase: {ts} after {self._last_ts}")
        self._last_ts = ts
        self._pushed += 1
        self._lock.notify_all()  # waiters run once this push releases the lock
        return ts

    def wait_for_ts(self, ts: float, timeout: float) -> bool:
        """Block until a frame stamped at or after ``ts`` has been pushed (True), or for
        at most ``timeout`` seconds (False): a clip's "after" part waits here."""
        with self._lock:
            return self._lock.wait_for(
                lambda: self._last_ts is not None and self._last_ts >= ts, timeout=max(0.0, timeout)
            )

    def _cutoff(self) -> float:
        """Oldest timestamp still inside the window. The microsecond of slack keeps a
        frame exactly ``max_seconds`` old when float rounding would put it a hair
        outside (10.96 - 10.0 > 0.96): 10 s at 25 fps holds 251 frames, not 250."""
        assert self._last_ts is not None
        return self._last_ts - self.max_seconds - _EDGE_S

    def _stats(self, visible: list[float], held_frames: int, **extra: object) -> dict[str, Any]:
        oldest = visible[0] if visible else None
        newest = visible[-1] if visible else None
        span = (visible[-1] - visible[0]) if visible else 0.0
        fps = (len(visible) - 1) / span if span > 0 else None
        dropped = self._dropped_age + self._dropped_budget + self._dropped_undecodable
        return {
            "frames": held_frames,
            "bytes": self._bytes,
            "seconds_held": span,
            "oldest_ts": oldest,
            "newest_ts": newest,
            "fps": fps,
            "pushed_total": self._pushed,
            "dropped_total": dropped,
            "dropped_age_total": self._dropped_age,  # normal ageing out of the window
            "dropped_budget_total": self._dropped_budget,  # the window was cut short: raise max_bytes
            "dropped_undecodable_total": self._dropped_undecodable,
            "max_seconds": self.max_seconds,
            "max_bytes": self.max_bytes,
            **extra,
        }


def _decode_jpeg(data: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("stored JPEG could not be decoded")
    return img


class JpegFrameRing(_RingBase):
    """Frames from any source, each kept as a JPEG with its timestamp."""

    mode = "jpeg"

    def __init__(
        self, *, max_seconds: float = DEFAULT_MAX_SECONDS, max_bytes: int = DEFAULT_JPEG_MAX_BYTES, quality: int = 90
    ) -> None:
        super().__init__(max_seconds, max_bytes)
        if not 1 <= quality <= 100:
            raise ValueError(f"JPEG quality must be 1..100, got {quality}")
        self.quality = int(quality)
        self._ts: deque[float] = deque()
        self._data: deque[bytes] = deque()

    def push(self, ts: float, frame_bgr: np.ndarray) -> None:
        # Encode before taking the lock: it is the expensive part and touches no state.
        ok, buf = cv2.imencode(".jpg", frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise ValueError(f"cannot JPEG-encode a frame of shape {getattr(frame_bgr, 'shape', None)}")
        data = buf.tobytes()
        with self._lock:
            ts = self._accept_ts(ts)
            self._ts.append(ts)
            self._data.append(data)
            self._bytes += len(data) + ENTRY_OVERHEAD_BYTES
            cutoff = self._cutoff()
            while self._ts and self._ts[0] < cutoff:
                self._pop_oldest()
                self._dropped_age += 1
            while self._bytes > self.max_bytes:
                self._pop_oldest()
                self._dropped_budget += 1

    def _pop_oldest(self) -> None:
        self._ts.popleft()
        self._bytes -= len(self._data.popleft()) + ENTRY_OVERHEAD_BYTES

    def timestamps(self) -> list[float]:
        with self._lock:
            return list(self._ts)

    def nearest(self, ts: float) -> Lookup | None:
        return self.frames_at([0.0], ts)[0]

    def frames_at(
        self, offsets_before_event: Sequence[float], event_ts: float, *, tolerance: float | None = None
    ) -> list[Lookup | None]:
        """One lookup per offset: the frame nearest ``event_ts - offset``, or None when
        the ring is empty or the nearest frame is further than ``tolerance`` seconds."""
        asked = [event_ts - off for off in offsets_before_event]
        with self._lock:
            ts_list = list(self._ts)
            picks = [nearest_index(ts_list, t) for t in asked]
            blobs = {i: self._data[i] for i in picks if i is not None}
        decoded: dict[int, np.ndarray] = {}
        out: list[Lookup | None] = []
        for t, i in zip(asked, picks):
            if i is None or not _within(tolerance, t, ts_list[i]):
                out.append(None)
                continue
            if i in decoded:  # two offsets on one frame: decode once, hand out separate arrays
                out.append((ts_list[i], decoded[i].copy()))
            else:
                decoded[i] = _decode_jpeg(blobs[i])
                out.append((ts_list[i], decoded[i]))
        return out

    def clip_frames(self, start_ts: float, end_ts: float) -> list[tuple[float, bytes]]:
        """The stored JPEGs from ``start_ts`` to ``end_ts``, oldest first (references
        to immutable bytes: the caller decodes outside the lock)."""
        with self._lock:
            ts_list = list(self._ts)
            lo = bisect.bisect_left(ts_list, start_ts)
            hi = bisect.bisect_right(ts_list, end_ts)
            return [(ts_list[i], self._data[i]) for i in range(lo, hi)]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return self._stats(list(self._ts), len(self._ts), mode=self.mode, quality=self.quality)


@dataclass(frozen=True)
class CodecParams:
    """What a decoder needs besides the packets: the FFmpeg decoder name ("h264",
    "hevc") and the stream's extradata (SPS/PPS, or VPS/SPS/PPS for H.265) when
    the source carries them out of band (MP4, RTSP sprop-parameter-sets)."""

    name: str
    extradata: bytes | None = None


class _Gop:
    """One keyframe and the packets that follow it, all decoded with ``params``."""

    __slots__ = ("params", "ts", "data", "open")

    def __init__(self, params: CodecParams) -> None:
        self.params = params
        self.ts: list[float] = []
        self.data: list[bytes] = []
        self.open = True  # accepts further non-key packets


@dataclass
class _Span:
    """Packets copied out of the ring for one decode pass (outside the lock)."""

    params: CodecParams
    data: list[bytes]  # from the GOP's keyframe up to the last wanted packet
    ts: list[float]


def frame_to_bgr(frame: VideoFrame) -> np.ndarray:
    """BGR pixels of a decoded PyAV frame. Camera streams are yuv420p; OpenCV converts
    those ~3x faster than swscale's default path (2.6 vs 7.3 ms at 1080p) with half its
    error (mean -1.0 vs -2.1 levels after a BGR→YUV→BGR round trip); anything else
    goes through swscale."""
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        return cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2BGR_I420)
    return frame.to_ndarray(format="bgr24")


def _decode_span(span: _Span, wanted: Sequence[int], threads: int = 0) -> dict[int, tuple[int, np.ndarray]]:
    """Decode ``span`` once, returning ``{wanted index: (index decoded, BGR frame)}``.

    A packet the decoder rejects (network loss, corruption) does not fail the
    event: a wanted frame that did not come out is answered with the newest frame
    decoded before it, whose own timestamp goes back to the caller.
    """
    import av  # the JPEG ring and the pure helpers work without PyAV installed

    # A camera's H.264/H.265 decoder; PyAV's stubs tell a video one only from a literal name.
    ctx = cast("VideoCodecContext", av.CodecContext.create(span.params.name, "r"))
    if span.params.extradata:
        ctx.extradata = span.params.extradata
    # Frame threading pipelines the P-frame chain across cores (slice threading, the
    # default, does nothing for the single-slice streams most cameras send).
    ctx.thread_type = "AUTO"
    ctx.thread_count = threads
    todo = sorted(set(wanted))
    out: dict[int, tuple[int, np.ndarray]] = {}
    last: tuple[int, np.ndarray | VideoFrame] | None = None  # newest decoded frame not yet converted
    k = 0
    seq = 0

    def as_bgr(frame: np.ndarray | VideoFrame) -> np.ndarray:
        return frame if isinstance(frame, np.ndarray) else frame_to_bgr(frame)

    def take(frames: Iterable[VideoFrame]) -> None:
        nonlocal last, k, seq
        for frame in frames:
            idx = frame.pts if frame.pts is not None else seq
            seq = idx + 1
            while k < len(todo) and todo[k] < idx:  # passed a wanted packet that yielded no frame
                if last is not None:
                    last = (last[0], as_bgr(last[1]))
                    out[todo[k]] = last
                k += 1
            if k < len(todo) and todo[k] == idx:
                last = (idx, as_bgr(frame))  # convert only the frames asked for
                out[idx] = last
                k += 1
            else:
                last = (idx, frame)

    for i, data in enumerate(span.data):
        packet = av.Packet(data)
        packet.pts = i  # the decoder hands it back on the frame: maps frames to packets
        try:
            take(ctx.decode(packet))
        except av.error.FFmpegError:
            continue
    try:
        take(ctx.decode(None))  # flush: frame threading holds frames back
    except av.error.FFmpegError:
        pass
    if last is not None:
        for idx in todo[k:]:
            out[idx] = (last[0], as_bgr(last[1]))
    return out


class PacketRing(_RingBase):
    """Encoded H.264/H.265 packets as the camera sent them, kept from the keyframe
    the window still needs.

    Packets must come in decode order with increasing timestamps, which holds for
    IP camera profiles (no B-frames). ``max_seconds`` is what lookups can reach; the
    ring may hold up to one GOP more before it (the lead-in) to decode the first
    frames of the window. ``max_bytes`` should fit the window plus two GOPs: when
    over budget the oldest GOP goes whole, and when that was the GOP being received,
    the following non-key packets are undecodable and dropped (counted) until the
    next keyframe.
    """

    mode = "packets"

    def __init__(
        self,
        codec: str = "h264",
        extradata: bytes | None = None,
        *,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        max_bytes: int = DEFAULT_PACKET_MAX_BYTES,
        decode_threads: int = 0,
    ) -> None:
        super().__init__(max_seconds, max_bytes)
        self.decode_threads = int(decode_threads)  # per decoder; 0: FFmpeg picks from the core count
        self._params = CodecParams(codec, bytes(extradata) if extradata else None)
        self._gops: deque[_Gop] = deque()
        self._frames = 0

    def set_codec(self, codec: str, extradata: bytes | None = None) -> None:
        """New stream parameters (camera reconnect, resolution change). Held GOPs
        keep decoding with the parameters they were received under; packets after
        this wait for the next keyframe."""
        with self._lock:
            self._params = CodecParams(codec, bytes(extradata) if extradata else None)
            if self._gops:
                self._gops[-1].open = False

    def push(self, ts: float, data: bytes, *, keyframe: bool) -> None:
        """``data``: one packet's bytes (``bytes(av_packet)`` works), ``keyframe``:
        whether a decoder can start at it (``av_packet.is_keyframe``)."""
        data = bytes(data)
        with self._lock:
            ts = self._accept_ts(ts)
            if keyframe:
                if self._gops:
                    self._gops[-1].open = False
                self._gops.append(_Gop(self._params))
            elif not self._gops or not self._gops[-1].open:
                self._dropped_undecodable += 1  # nothing to decode it from
                return
            gop = self._gops[-1]
            gop.ts.append(ts)
            gop.data.append(data)
            self._frames += 1
            self._bytes += len(data) + ENTRY_OVERHEAD_BYTES
            cutoff = self._cutoff()
            # The oldest GOP goes once none of its frames is in the window and the
            # next one can serve the window's start (or nothing in it is in the window).
            while self._gops and (
                self._gops[0].ts[-1] < cutoff or (len(self._gops) > 1 and self._gops[1].ts[0] <= cutoff)
            ):
                self._dropped_age += self._drop_oldest_gop()
            while self._bytes > self.max_bytes:
                self._dropped_budget += self._drop_oldest_gop()

    def _drop_oldest_gop(self) -> int:
        gop = self._gops.popleft()
        n = len(gop.ts)
        self._frames -= n
        self._bytes -= sum(len(d) for d in gop.data) + n * ENTRY_OVERHEAD_BYTES
        return n

    def _visible_locked(self) -> list[tuple[int, int, float]]:
        """(gop, packet, ts) for every frame a lookup may return, oldest first."""
        if not self._gops:
            return []
        cutoff = self._cutoff()
        out: list[tuple[int, int, float]] = []
        for g, gop in enumerate(self._gops):
            start = bisect.bisect_left(gop.ts, cutoff) if g == 0 else 0
            out.extend((g, i, gop.ts[i]) for i in range(start, len(gop.ts)))
        return out

    def timestamps(self) -> list[float]:
        with self._lock:
            return [t for _, _, t in self._visible_locked()]

    def nearest(self, ts: float) -> Lookup | None:
        return self.frames_at([0.0], ts)[0]

    def frames_at(
        self, offsets_before_event: Sequence[float], event_ts: float, *, tolerance: float | None = None
    ) -> list[Lookup | None]:
        """One lookup per offset (see ``JpegFrameRing.frames_at``). Lookups that fall
        in one GOP share a single decode pass, from its keyframe to the latest of them."""
        asked = [event_ts - off for off in offsets_before_event]
        with self._lock:
            visible = self._visible_locked()
            vts = [t for _, _, t in visible]
            picks: list[tuple[int, int] | None] = []
            spans: dict[int, _Span] = {}
            for t in asked:
                j = nearest_index(vts, t)
                if j is None or not _within(tolerance, t, vts[j]):
                    picks.append(None)
                    continue
                g, i, _ = visible[j]
                picks.append((g, i))
                gop = self._gops[g]
                if g not in spans or len(spans[g].data) <= i:
                    spans[g] = _Span(gop.params, gop.data[: i + 1], gop.ts[: i + 1])
        wanted = {g: sorted({p[1] for p in picks if p and p[0] == g}) for g in spans}
        if len(spans) > 1:
            # PyAV releases the GIL while decoding: separate GOPs decode side by side.
            with ThreadPoolExecutor(max_workers=len(spans)) as pool:
                futures = {
                    g: pool.submit(_decode_span, span, wanted[g], self.decode_threads) for g, span in spans.items()
                }
                decoded = {g: f.result() for g, f in futures.items()}
        else:
            decoded = {g: _decode_span(span, wanted[g], self.decode_threads) for g, span in spans.items()}
        out: list[Lookup | None] = []
        handed: set[int] = set()
        for p in picks:
            if p is None or p[1] not in decoded[p[0]]:
                out.append(None)  # not even the keyframe decoded
                continue
            got, frame = decoded[p[0]][p[1]]
            if id(frame) in handed:
                frame = frame.copy()
            handed.add(id(frame))
            out.append((spans[p[0]].ts[got], frame))
        return out

    def clip_packets(self, start_ts: float, end_ts: float) -> tuple[CodecParams | None, list[tuple[float, bytes]]]:
        """Packets to mux a clip from ``start_ts`` to ``end_ts`` without decoding: from
        the keyframe at or before ``start_ts`` (so the clip's first frame decodes; the
        clip may start up to one GOP early) to the last packet at or before ``end_ts``.
        Only GOPs received under one set of codec parameters are joined: a clip never
        spans a reconnect that changed them, the newer part wins."""
        with self._lock:
            gops = [g for g in self._gops if g.ts and g.ts[0] <= end_ts and g.ts[-1] >= start_ts]
            if not gops:
                return None, []
            params = gops[-1].params
            out: list[tuple[float, bytes]] = []
            for g in gops:
                if g.params is not params:  # a set_codec between them, even to equal values
                    out.clear()
                    continue
                out.extend((t, d) for t, d in zip(g.ts, g.data) if t <= end_ts)
            return params, out

    def stats(self) -> dict[str, Any]:
        with self._lock:
            visible = self._visible_locked()
            return self._stats(
                [t for _, _, t in visible],
                self._frames,
                mode=self.mode,
                codec=self._params.name,
                gops=len(self._gops),
                lead_in_frames=self._frames - len(visible),
            )
