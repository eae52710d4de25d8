"""Event clips: the buffered seconds around a camera event as an MP4 a browser plays.

From a packet ring (RTSP cameras) the clip is the camera's own H.264/H.265 packets
put in an MP4 as they are, with no decode and no encode: cutting 8 s of a 1080p
stream costs a copy of ~4 MB, and the picture is exactly what the camera sent. The
packets go through FFmpeg's elementary-stream demuxer first, which reads the
parameter sets and frame size the MP4 header needs (avcC/hvcC, width, height) the
same way ``ffmpeg -f h264 -i - -c copy`` would; our arrival times become the packet
times (IP cameras send no B-frames, so decode order is display order).

From a JPEG ring (MJPEG and file sources) there is nothing to copy that a browser plays
in MP4, so those frames are encoded once, H.264 yuv420p (CRF 23, veryfast), one JPEG
decoded at a time, with x264's zero-latency tuning: no lookahead and no B-frames keep
the encoder's frames in flight few (an 8 s 720p clip: +49 MB peak instead of +100 MB,
and 4.2 s instead of 5.4 s of encoding on this 2-core box). Both write ``+faststart``
(the index first), so a page can start playing before the whole file has arrived.
"""

from __future__ import annotations

import io
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

import av
import cv2
import numpy as np

from services.camera.ring_buffer import CodecParams

MS = Fraction(1, 1000)
_DEMUXER = {"h264": "h264", "hevc": "hevc"}
_START = b"\x00\x00\x00\x01"


@dataclass(frozen=True)
class ClipInfo:
    mode: str  # "copy": the camera's packets; "encoded": JPEG frames encoded to H.264
    codec: str
    frames: int
    width: int
    height: int
    start_ts: float  # first frame's time (a copied clip starts at a keyframe: up to a GOP early)
    end_ts: float  # last frame's time
    seconds: float  # what the file plays: last frame's time + its duration - first's

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _durations_ms(ts: Sequence[float]) -> list[int]:
    """Each frame lasts until the next; the last one as long as the typical gap."""
    gaps = [max(1, round((b - a) * 1000)) for a, b in zip(ts, ts[1:])]
    return gaps + [round(statistics.median(gaps)) if gaps else 100]


def _pts_ms(ts: Sequence[float]) -> list[int]:
    out: list[int] = []
    for t in ts:
        v = round((t - ts[0]) * 1000)
        out.append(v if not out or v > out[-1] else out[-1] + 1)  # strictly increasing in the file
    return out


def annexb_parameter_sets(codec: str, extradata: bytes | None) -> bytes:
    """The stream's out-of-band parameter sets as start-code NAL units, which is how an
    elementary stream carries them. RTSP (sprop-parameter-sets) already gives them so;
    an avcC/hvcC record (MP4-style, first byte 1) is unpacked."""
    if not extradata:
        return b""
    if extradata[0] != 1:
        return bytes(extradata)
    d, out = memoryview(extradata), []

    def take(pos: int, count: int) -> int:
        for _ in range(count):
            size = int.from_bytes(d[pos : pos + 2], "big")
            out.append(_START + bytes(d[pos + 2 : pos + 2 + size]))
            pos += 2 + size
        return pos

    if codec == "h264":  # avcC: 5 bytes, SPS count, SPSs, PPS count, PPSs
        pos = take(6, extradata[5] & 0x1F)
        take(pos + 1, extradata[pos])
    elif codec == "hevc":  # hvcC: 22 bytes, array count, arrays of (type, count, NALs)
        pos = 23
        for _ in range(extradata[22]):
            pos = take(pos + 3, int.from_bytes(d[pos + 1 : pos + 3], "big"))
    return b"".join(out)


def _length_size(codec: str, extradata: bytes | None) -> int:
    """NAL length-prefix size when the stream is in MP4 form (avcC/hvcC extradata), else 0."""
    if not extradata or extradata[0] != 1:
        return 0
    return (extradata[4 if codec == "h264" else 21] & 0x3) + 1


def _to_annexb(data: bytes, length_size: int) -> bytes:
    out, pos = [], 0
    while pos + length_size <= len(data):
        size = int.from_bytes(data[pos : pos + length_size], "big")
        out.append(_START + data[pos + length_size : pos + length_size + size])
        pos += length_size + size
    return b"".join(out)


def write_packet_clip(dst: str, params: CodecParams, packets: Sequence[tuple[float, bytes]]) -> ClipInfo:
    """Remux ``packets`` ((arrival time, bytes), starting at a keyframe) into an MP4 at ``dst``."""
    if not packets:
        raise ValueError("no packets to make a clip from")
    fmt = _DEMUXER.get(params.name)
    if fmt is None:
        raise ValueError(f"clips are made from H.264 or H.265 packets, not {params.name}")
    n = _length_size(params.name, params.extradata)
    raw = annexb_parameter_sets(params.name, params.extradata) + b"".join(
        _to_annexb(d, n) if n else d for _, d in packets
    )
    with av.open(io.BytesIO(raw), "r", format=fmt) as inp:
        ist = inp.streams.video[0]
        # Held once, to match them to our packets: a clip's worth of compressed bytes.
        demuxed = [p for p in inp.demux(ist) if p.size]
        ts = [t for t, _ in packets]
        if len(demuxed) != len(ts):
            # The parser cut access units differently (a camera that sends parameter
            # sets or SEI as packets of their own): spread our time span evenly.
            step = (ts[-1] - ts[0]) / max(1, len(demuxed) - 1)
            ts = [ts[0] + i * step for i in range(len(demuxed))]
        pts, durations = _pts_ms(ts), _durations_ms(ts)
        width, height = ist.codec_context.width, ist.codec_context.height
        with av.open(dst, "w", format="mp4", options={"movflags": "+faststart"}) as out:
            ost = out.add_stream_from_template(ist)
            for p, t, dur in zip(demuxed, pts, durations):
                p.stream = ost
                p.time_base = MS
                p.pts = p.dts = t
                p.duration = dur
                out.mux(p)
    return ClipInfo(
        mode="copy",
        codec=params.name,
        frames=len(demuxed),
        width=width,
        height=height,
        start_ts=ts[0],
        end_ts=ts[-1],
        seconds=round((pts[-1] + durations[-1]) / 1000, 3),
    )


def write_jpeg_clip(dst: str, frames: Sequence[tuple[float, bytes]], *, crf: int = 23) -> ClipInfo:
    """Encode ``frames`` ((time, JPEG bytes)) as H.264 in an MP4 at ``dst``, each frame
    shown at its own time (a thinned or stuttering source stays in real time)."""
    if not frames:
        raise ValueError("no frames to make a clip from")
    ts = [t for t, _ in frames]
    pts, durations = _pts_ms(ts), _durations_ms(ts)
    width = height = encoded = 0
    with av.open(dst, "w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = None
        for (_, data), t in zip(frames, pts):
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                continue  # the ring stores only frames it encoded; skip rather than fail the clip
            if stream is None:
                # yuv420p needs even sides: drop an odd last row or column.
                height, width = img.shape[0] - img.shape[0] % 2, img.shape[1] - img.shape[1] % 2
                fps = round(1000 / statistics.median(durations)) if durations else 10
                stream = out.add_stream("libx264", rate=max(1, fps))
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                stream.codec_context.time_base = MS
                stream.options = {"crf": str(crf), "preset": "veryfast", "tune": "zerolatency"}
            img = img[:height, :width]
            if img.shape[:2] != (height, width):  # a reconnect at another size
                img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img, dtype=np.uint8), format="bgr24")
            encoded += 1
            vf.pts, vf.time_base = t, MS
            for pkt in stream.encode(vf):
                out.mux(pkt)
        if stream is None:
            raise ValueError("none of the buffered frames could be decoded")
        for pkt in stream.encode():
            out.mux(pkt)
    return ClipInfo(
        mode="encoded",
        codec="h264",
        frames=encoded,
        width=width,
        height=height,
        start_ts=ts[0],
        end_ts=ts[-1],
        seconds=round((pts[-1] + durations[-1]) / 1000, 3),
    )
