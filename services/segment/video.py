"""Decoding source videos to processing-size frames and encoding overlay videos (PyAV)."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from typing import BinaryIO

import av
import cv2
import numpy as np

from services.media.video import open_input


def processing_shape(width: int, height: int, size: int) -> tuple[int, int]:
    """Scale so the longer side is at most ``size``; even sides, as yuv420p encoding needs."""
    scale = min(1.0, size / max(width, height))
    w = max(2, int(round(width * scale / 2)) * 2)
    h = max(2, int(round(height * scale / 2)) * 2)
    return w, h


def iter_frames(src: BinaryIO, size: int, max_frames: int) -> Iterator[np.ndarray]:
    """BGR uint8 frames resized to the processing size, in display order, at most ``max_frames``.
    Read as the upload was checked: its container's demuxer, nothing but the file."""
    with open_input(src) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        target = None
        n = 0
        for frame in c.decode(stream):
            img = frame.to_ndarray(format="bgr24")
            if target is None:
                target = processing_shape(img.shape[1], img.shape[0], size)
            if (img.shape[1], img.shape[0]) != target:
                img = cv2.resize(img, target, interpolation=cv2.INTER_AREA)
            yield img
            n += 1
            if n >= max_frames:
                return


class Mp4Writer:
    """H.264 yuv420p MP4 with the index up front (+faststart), so browsers play it as it loads."""

    def __init__(self, dst: str, width: int, height: int, fps: Fraction, *, crf: int = 23):
        self._c = av.open(dst, mode="w", format="mp4", options={"movflags": "+faststart"})
        self._s = self._c.add_stream("libx264", rate=fps)
        self._s.width, self._s.height, self._s.pix_fmt = width, height, "yuv420p"
        self._s.options = {"crf": str(crf), "preset": "veryfast"}

    def add(self, frame_bgr: np.ndarray) -> None:
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_bgr), format="bgr24")
        for pkt in self._s.encode(vf):
            self._c.mux(pkt)

    def close(self) -> None:
        for pkt in self._s.encode():
            self._c.mux(pkt)
        self._c.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MatteWriter(Mp4Writer):
    """The masks as a lossless grayscale matte (white = the object) in QuickTime
    Animation (qtrle) in a .mov: editors (After Effects, Premiere, Resolve, Final Cut)
    open it as a luma track matte with no generation loss at the edges, which a lossy
    H.264 matte would blur, and run-length coding keeps a binary mask small (a few KB per
    frame). ProRes 4444 with alpha would carry the frame as well, at ~100 x the size."""

    def __init__(self, dst: str, width: int, height: int, fps: Fraction):
        self._c = av.open(dst, mode="w", format="mov")
        self._s = self._c.add_stream("qtrle", rate=fps)
        self._s.width, self._s.height, self._s.pix_fmt = width, height, "gray"

    def add(self, mask_u8: np.ndarray) -> None:
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(mask_u8), format="gray")
        for pkt in self._s.encode(vf):
            self._c.mux(pkt)


def overlay(
    frame_bgr: np.ndarray, mask: np.ndarray, *, color: tuple[int, int, int] = (60, 220, 60), alpha: float = 0.45
) -> np.ndarray:
    """The frame with the mask tinted and outlined: what a person checks flicker on."""
    out = frame_bgr.copy()
    m = mask.astype(bool)
    if m.any():
        tint = np.empty_like(out)
        tint[:] = color
        out[m] = cv2.addWeighted(out, 1 - alpha, tint, alpha, 0)[m]
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, color, 1, lineType=cv2.LINE_AA)
    return out
