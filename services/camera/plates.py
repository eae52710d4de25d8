"""Russian licence plate location with the Haar cascade OpenCV ships.

``haarcascade_russian_plate_number.xml`` (opencv-python-headless < 5; the 5.x
wheels no longer ship it) is small, CPU-only and needs no weights download. It is
loaded once per process, on first use, through the model registry. Its detections are ~1.2× wider and ~1.8×
taller than the plate (the cascade window is 60 × 20, the plate 520 × 112 mm) and
it fires now and then on horizontal stripes such as grilles; boxes are therefore
ranked by how many overlapping windows agreed (the cascade's own confidence), and
callers should pass the vehicle box of the event as ``roi`` when they have one.
"""

from __future__ import annotations

import contextlib
import math
import os
from contextlib import AbstractContextManager
from pathlib import Path

import cv2
import numpy as np

from services.camera.sharpness import Box, clip_box
from services.runtime.registry import registry

CASCADE_FILE = "haarcascade_russian_plate_number.xml"
CASCADE_WINDOW = (60, 20)  # the cascade's own detection window (w, h): nothing smaller is found


class CascadeUnavailable(RuntimeError):
    """The plate cascade file is missing or unreadable."""


def default_cascade_path() -> Path:
    data = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if data is None:
        raise CascadeUnavailable(
            "this OpenCV build has no cv2.data.haarcascades (install opencv-python-headless>=4.8,<5)"
        )
    return Path(data) / CASCADE_FILE


def load_cascade(path: str | os.PathLike[str] | None = None) -> cv2.CascadeClassifier:
    path = Path(path) if path is not None else default_cascade_path()
    if not path.is_file():
        raise CascadeUnavailable(
            f"plate cascade not found at {path} (opencv-python-headless>=4.8,<5 ships it; 5.x does not)"
        )
    try:
        cascade = cv2.CascadeClassifier(str(path))
    except (cv2.error, SystemError) as exc:  # malformed XML surfaces as SystemError
        raise CascadeUnavailable(f"plate cascade at {path} could not be loaded: {exc}") from exc
    if cascade.empty():
        raise CascadeUnavailable(f"plate cascade at {path} could not be loaded")
    return cascade


REGISTRY_NAME = "plate_cascade"


def _default_cascade() -> AbstractContextManager[cv2.CascadeClassifier]:
    """The process's cascade, from the model registry (loaded once, on first use).
    ``registry.use`` also serialises callers: detectMultiScale mutates the classifier's
    internal buffers (opencv/opencv#4287), so one instance serves one caller at a time."""
    if REGISTRY_NAME not in registry.names():
        registry.register(REGISTRY_NAME, load_cascade, version=f"opencv-{cv2.__version__}")
    return registry.use(REGISTRY_NAME)


def find_plates(
    img_bgr: np.ndarray,
    *,
    roi: Box | None = None,
    max_plates: int = 5,
    min_size: tuple[int, int] = CASCADE_WINDOW,
    min_neighbors: int = 4,
    scale_factor: float = 1.1,
    cascade: cv2.CascadeClassifier | None = None,
) -> list[Box]:
    """Plate boxes (x, y, w, h) in full-frame coordinates, most confident first.

    ``roi`` (x, y, w, h, clipped to the frame) limits the search, e.g. to the
    vehicle box of the event; ``min_size`` is the smallest detection box (w, h);
    ``min_neighbors`` is the cascade's agreement threshold (higher: fewer false hits,
    small plates missed). ``cascade`` overrides the process-wide default.
    """
    if max_plates <= 0:
        return []
    fh, fw = img_bgr.shape[:2]
    region = clip_box(roi, img_bgr.shape) if roi is not None else (0, 0, fw, fh)
    if region is None:
        return []
    x, y, w, h = region
    if w < min_size[0] or h < min_size[1]:
        return []
    # The cascade's window reaches ~0.4 plate heights above and below the plate, so a
    # plate at the edge of the search area (the frame's, or a tight ROI's) is missed
    # without a margin: take real pixels where the frame has them, replicate the rest.
    m = max(int(min_size[1]), round(0.05 * w))
    ex0, ey0, ex1, ey1 = max(0, x - m), max(0, y - m), min(fw, x + w + m), min(fh, y + h + m)
    area = img_bgr[ey0:ey1, ex0:ex1]
    gray = area if area.ndim == 2 else cv2.cvtColor(area, cv2.COLOR_BGR2GRAY)
    top, left = m - (y - ey0), m - (x - ex0)
    gray = cv2.copyMakeBorder(gray, top, m - (ey1 - y - h), left, m - (ex1 - x - w), cv2.BORDER_REPLICATE)
    # A caller's own cascade is the caller's to serialise.
    using = _default_cascade() if cascade is None else contextlib.nullcontext(cascade)
    with using as detector:
        boxes, neighbours = detector.detectMultiScale2(
            gray, scaleFactor=scale_factor, minNeighbors=min_neighbors, minSize=tuple(int(v) for v in min_size)
        )
    ranked = []
    for n, (bx, by, bw, bh) in zip(np.asarray(neighbours).ravel().tolist(), np.asarray(boxes).tolist()):
        bx, by = bx + ex0 - left, by + ey0 - top  # frame coordinates
        cx, cy = bx + bw / 2, by + bh / 2
        if not (x <= cx < x + w and y <= cy < y + h):
            continue  # found in the margin: belongs to whatever is outside the ROI
        box = clip_box((bx, by, bw, bh), img_bgr.shape)
        if box is not None:
            ranked.append((n, box))
    ranked.sort(key=lambda nb: (-nb[0], -nb[1][2] * nb[1][3]))
    return [box for _, box in ranked[:max_plates]]


def crop(img: np.ndarray, box: Box, pad: float = 0.1) -> np.ndarray:
    """The box grown by ``pad`` of its width/height on each side, clipped to the
    frame, as a copy: a view would keep the whole multi-megabyte frame alive for as
    long as the crop lives (in a result queue, say)."""
    x, y, w, h = box
    # Grow outwards to whole pixels, then clip.
    x0, y0 = math.floor(x - w * pad), math.floor(y - h * pad)
    x1, y1 = math.ceil(x + w + w * pad), math.ceil(y + h + h * pad)
    clipped = clip_box((x0, y0, x1 - x0, y1 - y0), img.shape)
    if clipped is None:
        raise ValueError(f"box {box} lies outside the {img.shape[1]}x{img.shape[0]} frame")
    cx, cy, cw, ch = clipped
    return img[cy : cy + ch, cx : cx + cw].copy()
