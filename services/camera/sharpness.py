"""Which of a few candidate frames is sharpest: variance of the Laplacian.

Snow, rain and motion blur the frames around an event unevenly; the origin kept
the frames 2, 3 and 4 s before it and wants the crispest. The Laplacian responds
to edges, blur removes them, so its variance falls as blur grows. The score is
only comparable between frames of the same scene and size, which is the case
here, and the event's vehicle/plate box (``roi``) keeps a sharp background from
outvoting a blurred car.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h in pixels


def clip_box(box: Sequence[float], shape: tuple[int, ...]) -> Box | None:
    """``box`` (x, y, w, h, rounded to pixels) intersected with an image of ``shape``; None
    when nothing is left."""
    x, y, w, h = (int(round(v)) for v in box)
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(shape[1], x + w), min(shape[0], y + h)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1 - x0, y1 - y0


def laplacian_variance(img_bgr: np.ndarray, roi: Box | None = None) -> float:
    """Variance of the Laplacian of the grayscale image, inside ``roi`` (x, y, w, h,
    clipped to the frame) when given. Raises ValueError when the ROI misses the frame."""
    img = img_bgr
    if roi is not None:
        box = clip_box(roi, img.shape)
        if box is None:
            raise ValueError(f"roi {roi} lies outside the {img.shape[1]}x{img.shape[0]} frame")
        x, y, w, h = box
        img = img[y : y + h, x : x + w]
    gray = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    # float32 output: uint8 would clip negative responses; meanStdDev accumulates in double.
    lap = cv2.Laplacian(gray, cv2.CV_32F)
    _, std = cv2.meanStdDev(lap)
    return float(std[0, 0]) ** 2


def pick_sharpest(candidates: Sequence[tuple[float, np.ndarray]], roi: Box | None = None) -> tuple[int, list[float]]:
    """Index of the sharpest ``(ts, frame)`` candidate and every candidate's score.

    Ties go to the first candidate. Frames that a ring could not supply (None)
    must be filtered out by the caller.
    """
    if not candidates:
        raise ValueError("no candidate frames to pick from")
    scores = [laplacian_variance(frame, roi) for _, frame in candidates]
    return int(np.argmax(scores)), scores
