"""Video upload checks shared by the gateway and the segment worker (PyAV only: no torch,
no OpenCV). The container is recognised by probing its content with FFmpeg, never by
the file name, and the limits are checked from the header before any frame is decoded.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any, BinaryIO

log = logging.getLogger("kadr.video")

# The FFmpeg demuxer each accepted container is read with. It is chosen from the file's
# magic bytes (sniff_container) and forced: FFmpeg's own probing never gets to pick
# another demuxer (HLS, DASH, concat and the like open other files and URLs).
DEMUXERS = {"mp4": "mov", "avi": "avi", "mkv": "matroska"}
# Reading an upload touches nothing but the upload: no protocol but plain files for any
# nested open, and the MOV demuxer's external data references stay off (FFmpeg's
# default, said here so a build that changes it does not change us).
_SAFE_OPTIONS = {"protocol_whitelist": "file", "enable_drefs": "0"}
_PROBE_OPTIONS = {**_SAFE_OPTIONS, "probesize": str(8 * 1024 * 1024), "analyzeduration": str(10_000_000)}


class VideoError(Exception):
    STATUS = {
        "empty_file": 400,
        "invalid_video": 400,
        "unsupported_format": 415,
        "file_too_large": 413,
        "video_too_long": 413,
        "too_many_frames": 413,
        "resolution_too_large": 413,
        "video_unavailable": 503,
    }

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message, self.status = code, message, self.STATUS[code]


@dataclass(frozen=True)
class VideoInfo:
    container: str
    codec: str
    width: int
    height: int
    fps: float
    duration_s: float
    frames: int
    size_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VideoLimits:
    max_bytes: int
    max_seconds: float
    max_frames: int
    max_width: int
    max_height: int


def _size(src: BinaryIO) -> int:
    src.seek(0, 2)
    n = src.tell()
    src.seek(0)
    return n


_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")


def sniff_container(head: bytes) -> str | None:
    """A cheap first look at the magic bytes, so FFmpeg's probers (which will take almost
    anything: text becomes a "tty" stream) only ever see plausible containers."""
    if len(head) >= 8 and head[4:8] in _MP4_BOXES:
        return "mp4"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "mkv"
    return None


def _av() -> Any:
    """PyAV, or a 503 that says it is missing: a process without it (a gateway image
    built without the video extra) refuses video uploads instead of failing each one
    with a 500."""
    try:
        import av  # lazy: only video routes pay for FFmpeg
    except ImportError as e:
        log.error("PyAV is not installed: video uploads are refused", extra={"error": str(e)})
        raise VideoError(
            "video_unavailable", "this server cannot read videos now (PyAV is missing); tell the operator"
        ) from e
    return av


def open_input(src: BinaryIO, container: str | None = None, options: dict[str, str] | None = None) -> Any:
    """``av.open`` of an upload with its container's demuxer forced and nothing but the
    file readable (see DEMUXERS). ``container``: as sniffed or recorded at upload; read
    from the magic bytes when not given."""
    av = _av()
    if container is None:
        head = src.read(16)
        src.seek(0)
        container = sniff_container(head)
    if container not in DEMUXERS:
        raise VideoError("unsupported_format", "not an mp4, mov, avi, mkv or webm file")
    return av.open(src, mode="r", format=DEMUXERS[container], options={**_SAFE_OPTIONS, **(options or {})})


def probe(src: BinaryIO) -> VideoInfo:
    """Container, codec, size, fps, duration and frame count from the header."""
    av = _av()
    size = _size(src)
    if size == 0:
        raise VideoError("empty_file", "the file is empty")
    head = src.read(16)
    src.seek(0)
    container = sniff_container(head)
    if container is None:
        raise VideoError("unsupported_format", "not an mp4, mov, avi, mkv or webm file")
    try:
        with open_input(src, container, _PROBE_OPTIONS) as c:
            if not c.streams.video:
                raise VideoError("invalid_video", "the file has no video stream")
            s = c.streams.video[0]
            cc = s.codec_context
            fps = float(s.average_rate or s.guessed_rate or 0) or 0.0
            if s.duration is not None and s.time_base is not None:
                duration = float(s.duration * s.time_base)
            elif c.duration is not None:
                duration = c.duration / 1_000_000
            else:
                duration = 0.0
            frames = int(s.frames or 0) or (round(duration * fps) if fps else 0)
            info = VideoInfo(
                container=container,
                codec=cc.name,
                width=int(cc.width or 0),
                height=int(cc.height or 0),
                fps=round(fps, 3),
                duration_s=round(duration, 3),
                frames=frames,
                size_bytes=size,
            )
    except VideoError:
        raise
    except (av.error.FFmpegError, ValueError, IndexError) as e:
        raise VideoError("invalid_video", f"not a readable video ({type(e).__name__})") from e
    finally:
        src.seek(0)
    if info.width <= 0 or info.height <= 0:
        raise VideoError("invalid_video", "the video stream has no frame size")
    return info


def check_video(src: BinaryIO, limits: VideoLimits) -> VideoInfo:
    size = _size(src)
    if size > limits.max_bytes:
        raise VideoError("file_too_large", f"{size} bytes; at most {limits.max_bytes} accepted")
    info = probe(src)
    if info.duration_s > limits.max_seconds:
        raise VideoError("video_too_long", f"{info.duration_s:.1f} s; at most {limits.max_seconds:g} s accepted")
    if info.frames > limits.max_frames:
        raise VideoError("too_many_frames", f"{info.frames} frames; at most {limits.max_frames} accepted")
    if info.width > limits.max_width or info.height > limits.max_height:
        raise VideoError(
            "resolution_too_large",
            f"{info.width}x{info.height}; at most {limits.max_width}x{limits.max_height} accepted",
        )
    return info


def fps_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(25)
