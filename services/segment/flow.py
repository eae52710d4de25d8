"""Dense optical flow between consecutive frames (OpenCV DIS) and backward warping.

Shared by the flow-guided stabilizer and the flow-warped consistency metric, so the
two always see the same motion. Flow runs on grayscale frames at a reduced working
resolution: DIS cost grows with the pixel count while segmentation masks gain
little from sub-pixel motion detail, and the flow is rescaled to whatever size the
warped map has (frames and probability maps may differ in resolution).
"""

from __future__ import annotations

import cv2
import numpy as np

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
}
# OpenCV 4.14's DIS raises below ~12 px and segfaults when the shorter side is under
# 32 px while the longer is ~96 px or more (its pyramid depth follows the longer side;
# opencv#14554 fixed only part of this). Frames are therefore scaled so the shorter
# side is at least this, upscaling tiny ones rather than crashing the worker.
MIN_FLOW_SIDE = 32


def to_gray(frame: np.ndarray) -> np.ndarray:
    """uint8 grayscale from a BGR (HxWx3), BGRA or already gray (HxW) uint8 frame."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise TypeError(f"frames must be uint8, got {frame.dtype}")
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"frames must be HxW or HxWx3 (BGR), got shape {frame.shape}")


def working_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(h, w) the flow is computed at: longer side at most ``max_side``, shorter side
    at least MIN_FLOW_SIDE."""
    scale = min(1.0, max_side / max(height, width))
    scale = max(scale, MIN_FLOW_SIDE / min(height, width))
    return max(MIN_FLOW_SIDE, round(height * scale)), max(MIN_FLOW_SIDE, round(width * scale))


class DisFlow:
    """DIS optical flow for one stream of frames.

    Holds an OpenCV DIS instance and a per-size pixel grid, so one object serves a
    whole video cheaply; not safe to share between threads.
    """

    def __init__(self, preset: str = "ultrafast", max_side: int = 320):
        if preset not in PRESETS:
            raise ValueError(f"flow preset must be one of {sorted(PRESETS)}, got {preset!r}")
        if max_side < MIN_FLOW_SIDE:
            raise ValueError(f"flow max_side must be at least {MIN_FLOW_SIDE}, got {max_side}")
        self.preset = preset
        self.max_side = max_side
        self._dis = cv2.DISOpticalFlow.create(PRESETS[preset])
        self._grid: np.ndarray | None = None

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        """The frame as the flow sees it: grayscale uint8 at the working resolution.
        Prepare each frame once and pass the result to ``sampling_map``."""
        gray = to_gray(frame)
        h, w = working_size(gray.shape[0], gray.shape[1], self.max_side)
        if (h, w) == gray.shape:
            return np.ascontiguousarray(gray)
        # Area averaging only pays off against aliasing from 2x down; below that
        # linear is as good for DIS and several times faster at fractional ratios.
        interp = cv2.INTER_AREA if 2 * h <= gray.shape[0] else cv2.INTER_LINEAR
        return cv2.resize(gray, (w, h), interpolation=interp)

    def sampling_map(self, src: np.ndarray, dst: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Where each pixel of ``dst`` comes from in ``src``, at output size ``shape`` (h, w).

        ``src`` and ``dst`` are prepared frames. Returns an (h, w, 2) float32 map of
        absolute (x, y) coordinates for ``warp``: warping a map that belongs to ``src``
        with it aligns that map to ``dst`` (backward warping, so no holes).
        """
        if src.shape != dst.shape:
            raise ValueError(f"frame size changed within a stream: {src.shape} -> {dst.shape}")
        # calc(I0, I1) gives f with I0(p) ≈ I1(p + f(p)): with I0 = dst it points into src.
        # cv2's stubs type the output array as required; None (allocate it) is valid.
        flow: np.ndarray = self._dis.calc(dst, src, None)  # type: ignore[call-overload]
        h, w = shape
        fh, fw = flow.shape[:2]
        if (fh, fw) != (h, w):
            # Scaled while small, and per channel with cv2: numpy's broadcast over the
            # trailing axis of 2 costs more than the flow itself at 520x520.
            # A Scalar src2 is valid in cv2; its stubs list only arrays.
            flow = cv2.multiply(flow, (w / fw, h / fh, 0.0, 0.0))  # type: ignore[call-overload]
            flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
        flow += self._pixel_grid(h, w)
        return flow

    def _pixel_grid(self, h: int, w: int) -> np.ndarray:
        if self._grid is None or self._grid.shape[:2] != (h, w):
            xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            self._grid = np.dstack([xs, ys])
        return self._grid


def warp(image: np.ndarray, sampling_map: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """``image`` resampled at ``sampling_map`` (from ``DisFlow.sampling_map``).

    Pixels whose source lies outside the frame take the nearest edge value: content
    entering the frame has no history, and the edge is the best guess for it.
    """
    # cv2's stubs require map2, which is optional (None with a 2-channel map1).
    out: np.ndarray = cv2.remap(
        image,
        sampling_map,
        None,
        interpolation,  # type: ignore[call-overload]
        borderMode=cv2.BORDER_REPLICATE,
    )
    return out
