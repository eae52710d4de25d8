"""Temporal stabilization of per-frame segmentation probability maps.

A segmentation network sees each frame on its own, so masks flicker: boundary pixels
and ambiguous regions flip between consecutive frames. Each stabilizer here is a
causal streaming filter: ``step`` takes the probability map of the target class for
the newest frame (float32 HxW in [0, 1]) and returns the stabilized map for that same
frame, using only frames seen so far. State is bounded per pixel and independent of
the video length (window methods keep a ring of their last ``window`` maps only).

Methods (the API's names):

- ``moving_average``: mean of the last ``window`` maps.
- ``median``: per-pixel median of the last ``window`` maps; drops one-frame outliers
  and keeps edges sharper than the mean.
- ``exponential``: ``s = s + alpha * (p - s)``; lower alpha smooths more, reacts slower.
- ``confidence_gated``: MediaPipe's SegmentationSmoothingCalculator: confident
  pixels (far from 0.5) take the new value, uncertain ones are pulled towards the
  previous output.
- ``hysteresis``: binary output; a pixel turns on above ``high``, off below ``low``
  and otherwise keeps its state.
- ``flow_ema``: exponential smoothing after warping the previous output into the
  current frame with optical flow, so moving objects leave no trailing ghost.

Window methods warm up on the frames available (the first output is the first
input), so a constant input is a fixed point from the very first frame.

``make_stabilizer`` validates user parameters against the API ranges (the option
models of services.contracts.segment_options); the classes themselves accept the wider
mathematical ranges, e.g. window 1 or alpha 1, which are the identity.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

# One definition of the API ranges, shared with the gateway (which must not import cv2);
# re-exported here for callers of this module.
from services.contracts.segment_options import (
    METHODS,
    OPTIONS,
    ConfidenceGatedOptions,
    ExponentialOptions,
    FlowEmaOptions,
    HysteresisOptions,
    MedianOptions,
    MovingAverageOptions,
    parse_options,
)
from services.segment.flow import PRESETS, DisFlow, warp

__all__ = [
    "METHODS",
    "OPTIONS",
    "parse_options",
    "MovingAverageOptions",
    "MedianOptions",
    "ExponentialOptions",
    "ConfidenceGatedOptions",
    "HysteresisOptions",
    "FlowEmaOptions",
    "Stabilizer",
    "MovingAverage",
    "Median",
    "Exponential",
    "ConfidenceGated",
    "Hysteresis",
    "FlowEma",
    "binarize",
    "uncertainty",
    "median_network",
    "make_stabilizer",
    "stabilize_sequence",
]

# --------------------------------------------------------------------------- streaming filters


def binarize(prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Boolean mask of pixels more likely than ``threshold`` to be the target class."""
    return np.asarray(prob) > threshold


class Stabilizer(ABC):
    """Causal filter over a stream of probability maps; one instance per video.

    ``step`` returns a new float32 array each call (the stabilizer keeps no reference
    to it, so callers may modify or keep it).
    """

    needs_frames: ClassVar[bool] = False

    def __init__(self) -> None:
        self._shape: tuple[int, int] | None = None

    @abstractmethod
    def step(self, prob: np.ndarray, frame_bgr: np.ndarray | None = None) -> np.ndarray: ...

    def reset(self) -> None:
        """Forget the history, e.g. at a scene cut or before another video."""
        self._shape = None

    def _check(self, prob: np.ndarray) -> np.ndarray:
        p = np.asarray(prob, dtype=np.float32)
        if p.ndim != 2:
            raise ValueError(f"probability map must be 2-D (HxW), got shape {p.shape}")
        if self._shape is None:
            self._shape = p.shape
        elif p.shape != self._shape:
            raise ValueError(
                f"map size changed within a stream: {self._shape} -> {p.shape}; "
                "use one stabilizer per video or reset() it"
            )
        # Two reductions (~0.1 ms at 520x520) buy a clear error instead of NaN spreading
        # through the state, or logits passed where probabilities belong.
        lo, hi = (float(p.min()), float(p.max())) if p.size else (0.0, 0.0)
        if not (0.0 <= lo and hi <= 1.0):
            raise ValueError(f"probabilities must lie in [0, 1] (got values from {lo} to {hi})")
        return p


class MovingAverage(Stabilizer):
    """Mean of the last ``window`` maps via a running sum: O(1) per pixel per frame.

    The sum is float64: adding and later subtracting the same float32 map is then exact
    for practical inputs, so it does not drift over long videos, and a constant input
    divides back to exactly itself.
    """

    def __init__(self, window: int):
        super().__init__()
        if int(window) != window or window < 1:
            raise ValueError(f"window must be a positive integer, got {window!r}")
        self.window = int(window)
        self.reset()

    def reset(self) -> None:
        super().reset()
        self._ring: np.ndarray | None = None
        self._sum: np.ndarray | None = None
        self._count = 0  # frames seen, capped at window
        self._next = 0  # ring slot the next map goes to

    def step(self, prob: np.ndarray, frame_bgr: np.ndarray | None = None) -> np.ndarray:
        p = self._check(prob)
        if self._ring is None:
            self._ring = np.empty((self.window, *p.shape), dtype=np.float32)
            self._sum = np.zeros(p.shape, dtype=np.float64)
        if self._count == self.window:
            self._sum -= self._ring[self._next]
        else:
            self._count += 1
        self._ring[self._next] = p
        self._sum += p
        self._next = (self._next + 1) % self.window
        out = np.empty(p.shape, dtype=np.float32)
        np.divide(self._sum, self._count, out=out)
        # Rounding in the running sum can leave a hair outside [0, 1] (e.g. -1e-17 once
        # only zeros remain in the window).
        return np.clip(out, 0.0, 1.0, out=out)


# Smaller selection networks for the odd windows the API allows (N. Devillard, "Fast
# median search: an ANSI C implementation", 1998: opt_med3/5/7/9, after Paeth and
# Knuth): 30 min/max ops at 9 instead of Batcher's 40. Checked exhaustively in the tests.
_KNOWN_MEDIAN_STEPS = {
    3: [(0, 1), (1, 2), (0, 1)],
    5: [(0, 1), (3, 4), (0, 3), (1, 4), (1, 2), (2, 3), (1, 2)],
    7: [(0, 5), (0, 3), (1, 6), (2, 4), (0, 1), (3, 5), (2, 6), (2, 3), (3, 6), (4, 5), (1, 4), (1, 3), (3, 4)],
    9: [
        (1, 2),
        (4, 5),
        (7, 8),
        (0, 1),
        (3, 4),
        (6, 7),
        (1, 2),
        (4, 5),
        (7, 8),
        (0, 3),
        (5, 8),
        (4, 7),
        (3, 6),
        (1, 4),
        (2, 5),
        (4, 7),
        (4, 2),
        (6, 4),
        (4, 2),
    ],
}


def _batcher_steps(n: int) -> list[tuple[int, int]]:
    """Batcher's odd-even merge sort on ``n`` wires (for the even counts of warm-up)."""
    size = 1
    while size < n:
        size *= 2
    steps: list[tuple[int, int]] = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        steps.append((i + j, i + j + k))
            k //= 2
        p *= 2
    # Wires >= n are +inf padding: a step touching one never moves a real value.
    return [(a, b) for a, b in steps if b < n]


def median_network(n: int) -> list[tuple[int, int, bool, bool]]:
    """Compare-exchange steps that leave the median of ``n`` wires in the middle one(s).

    A known selection network (odd n ≤ 9) or Batcher's sort, pruned backwards to the
    steps that influence the middle wire(s) (``n // 2`` and ``(n - 1) // 2``). Each step
    is ``(i, j, keep_min, keep_max)``: afterwards wire i holds min(i, j) if ``keep_min``
    and wire j holds max(i, j) if ``keep_max``.
    """
    steps = _KNOWN_MEDIAN_STEPS.get(n) or _batcher_steps(n)
    needed = {(n - 1) // 2, n // 2}
    pruned = []
    for a, b in reversed(steps):
        keep_min, keep_max = a in needed, b in needed
        if keep_min or keep_max:
            pruned.append((a, b, keep_min, keep_max))
            needed |= {a, b}
    return pruned[::-1]


class Median(Stabilizer):
    """Per-pixel median of the last ``window`` maps.

    O(window) per pixel, which is fine for window ≤ 9. It runs as a fixed selection
    network of elementwise min/max over the maps (30 vectorised ops at window 9)
    instead of ``np.median(axis=0)``: numpy's per-pixel partition is ~13× slower at
    520×520, too slow next to the segmentation model it follows.
    """

    # Rows per strip: a wire's strip (~128 KiB) stays in cache through the network's
    # ops, ~20 % faster than whole maps at 520x520.
    STRIP_BYTES = 128 * 1024

    def __init__(self, window: int):
        super().__init__()
        if int(window) != window or window < 1:
            raise ValueError(f"window must be a positive integer, got {window!r}")
        self.window = int(window)
        self._networks = {n: median_network(n) for n in range(1, self.window + 1)}
        self.reset()

    def reset(self) -> None:
        super().reset()
        self._ring: np.ndarray | None = None
        self._work: np.ndarray | None = None
        self._count = 0
        self._next = 0

    def step(self, prob: np.ndarray, frame_bgr: np.ndarray | None = None) -> np.ndarray:
        p = self._check(prob)
        h, w = p.shape
        rows = max(1, self.STRIP_BYTES // (4 * max(w, 1)))
        ring, work = self._ring, self._work
        if ring is None or work is None:  # both made on the first step
            ring = self._ring = np.empty((self.window, h, w), dtype=np.float32)
            work = self._work = np.empty((self.window + 1, min(rows, h), w), dtype=np.float32)
        ring[self._next] = p
        self._next = (self._next + 1) % self.window
        self._count = min(self._count + 1, self.window)
        out = np.empty((h, w), dtype=np.float32)
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            self._select(ring[: self._count, r0:r1], work[:, : r1 - r0], out[r0:r1])
        return out

    def _select(self, maps: np.ndarray, work: np.ndarray, out: np.ndarray) -> None:
        """Median of ``maps`` (n, rows, w) into ``out``; ``work`` holds n + 1 scratch strips."""
        n = len(maps)
        # The median ignores order, so the ring's rotation does not matter. Wires start
        # as views of the ring (read, never written); a wire gets a scratch buffer the
        # first time a step writes it, which saves copying the ring every frame.
        wires: list[np.ndarray] = list(maps)
        owned = [False] * n
        free = list(work)
        for a, b, keep_min, keep_max in self._networks[n]:
            if keep_min and keep_max:
                lo = free.pop()
                np.fmin(wires[a], wires[b], out=lo)
                hi = wires[b] if owned[b] else free.pop()
                np.fmax(wires[a], wires[b], out=hi)
                if owned[a]:
                    free.append(wires[a])
                wires[a], wires[b] = lo, hi
                owned[a] = owned[b] = True
            elif keep_min:
                lo = wires[a] if owned[a] else free.pop()
                np.fmin(wires[a], wires[b], out=lo)
                wires[a], owned[a] = lo, True
            else:
                hi = wires[b] if owned[b] else free.pop()
                np.fmax(wires[a], wires[b], out=hi)
                wires[b], owned[b] = hi, True
        lo, hi = wires[(n - 1) // 2], wires[n // 2]
        if n % 2:
            np.copyto(out, lo)
        else:
            np.add(lo, hi, out=out)
            out *= np.float32(0.5)


class Exponential(Stabilizer):
    """``s_t = s_{t-1} + alpha * (p_t - s_{t-1})``, ``s_0 = p_0``; alpha in (0, 1]."""

    def __init__(self, alpha: float):
        super().__init__()
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
        self.alpha = float(alpha)
        self.reset()

    def reset(self) -> None:
        super().reset()
        self._state: np.ndarray | None = None

    def step(self, prob: np.ndarray, frame_bgr: np.ndarray | None = None) -> np.ndarray:
        p = self._check(prob)
        if self._state is None or self.alpha == 1.0:
            self._state = p.copy()
        else:
            # The increment form leaves a constant input exactly unchanged.
            _blend_into(self._state, p, np.float32(self.alpha))
        return self._state.copy()


def _blend_into(state: np.ndarray, new: np.ndarray, weight: np.float32 | np.ndarray) -> None:
    """state += weight * (new - state), clipped to [0, 1] against rounding; weight is a
    scalar or a per-pixel map."""
    delta = new - state
    delta *= weight
    state += delta
    np.clip(state, 0.0, 1.0, out=state)


# MediaPipe SegmentationSmoothingCalculator: a polynomial in t² = (p - 0.5)² that
# approximates H(p)², H the binary entropy of p in bits (within 0.002), without logs;
# 1 at p = 0.5, 0 at 0 and 1. (The comment next to it in MediaPipe states a different
# formula; the polynomial's values are what the calculator actually uses.)
_UNCERTAINTY_POLY = (5.68842, -0.748699, -57.8051, 291.309, -624.717)


def uncertainty(prob: np.ndarray) -> np.ndarray:
    """How unsure the network is about each pixel: 1 at p = 0.5, 0 at p = 0 or 1."""
    t = np.asarray(prob, dtype=np.float32) - np.float32(0.5)
    x = t * t
    c1, c2, c3, c4, c5 = (np.float32(c) for c in _UNCERTAINTY_POLY)
    acc = x * c5
    for c in (c4, c3, c2, c1):
        acc += c
        acc *= x
    # 1 - min(1, poly), and never above 1 either.
    np.clip(acc, 0.0, 1.0, out=acc)
    return np.subtract(np.float32(1.0), acc, out=acc)


class ConfidenceGated(Stabilizer):
    """``s_t = p_t + (s_{t-1} - p_t) * uncertainty(p_t) * ratio``, ``s_0 = p_0``.

    Confident pixels follow the network at once (no lag on clear motion), uncertain
    ones lean on the previous output (less flicker where the network hesitates).
    ``ratio`` in [0, 1]; 0 is the identity.
    """

    def __init__(self, combine_with_previous_ratio: float):
        super().__init__()
        if not 0.0 <= combine_with_previous_ratio <= 1.0:
            raise ValueError(f"combine_with_previous_ratio must be in [0, 1], got {combine_with_previous_ratio!r}")
        self.ratio = float(combine_with_previous_ratio)
        self.reset()

    def reset(self) -> None:
        super().reset()
        self._state: np.ndarray | None = None

    def step(self, prob: np.ndarray, frame_bgr: np.ndarray | None = None) -> np.ndarray:
        p = self._check(prob)
        if self._state is None:
            self._state = p.copy()
            return p.copy()
        weight = uncertainty(p)
        weight *= np.float32(self.ratio)
        # MediaPipe's form: exact for ratio 0 and for a constant input.
        state = self._state
        state -= p
        state *= weight
        state += p
        np.clip(state, 0.0, 1.0, out=state)
        return state.copy()


class Hysteresis(Stabilizer):
    """Two-threshold binarization with memory; output is 0.0/1.0 float32.

    On above ``high``, off below ``low``, otherwise the previous state. The first frame
    has no state, so it is cut at the midpoint of the two thresholds rather than biased
    towards either.
    """

    def __init__(self, low: float, high: float):
        super().__init__()
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"need 0 <= low < high <= 1, got low={low!r}, high={high!r}")
        self.low, self.high = float(low), float(high)
        self.reset()

    def reset(self) -> None:
        super().reset()
        self._on: np.ndarray | None = None

    def step(self, prob: np.ndarray, frame_bgr: np.ndarray | None = None) -> np.ndarray:
        p = self._check(prob)
        if self._on is None:
            self._on = p > (self.low + self.high) / 2
        else:
            self._on &= p >= self.low
            self._on |= p > self.high
        return self._on.astype(np.float32)


class FlowEma(Stabilizer):
    """Exponential smoothing along the motion: the previous output is warped into the
    current frame with DIS optical flow before ``s = w + alpha * (p - w)``.

    Needs the frames (BGR uint8; their size may differ from the maps'). alpha 1 is the
    identity and skips the flow.
    """

    needs_frames: ClassVar[bool] = True

    def __init__(self, alpha: float, flow_preset: str = "ultrafast", flow_max_side: int = 320):
        super().__init__()
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
        if flow_preset not in PRESETS:
            raise ValueError(f"flow_preset must be one of {sorted(PRESETS)}, got {flow_preset!r}")
        self.alpha = float(alpha)
        self.flow_preset = flow_preset
        self.flow_max_side = int(flow_max_side)
        self.reset()

    def reset(self) -> None:
        super().reset()
        self._flow = DisFlow(self.flow_preset, self.flow_max_side)
        self._state: np.ndarray | None = None
        self._prev_frame: np.ndarray | None = None

    def step(self, prob: np.ndarray, frame_bgr: np.ndarray | None = None) -> np.ndarray:
        p = self._check(prob)
        if frame_bgr is None:
            raise ValueError("flow_ema needs the video frame with each probability map")
        if self.alpha == 1.0:
            return p.copy()
        frame = self._flow.prepare(frame_bgr)
        if self._state is None or self._prev_frame is None:  # set together
            self._state = p.copy()
        else:
            mapping = self._flow.sampling_map(self._prev_frame, frame, p.shape)
            self._state = warp(self._state, mapping)
            _blend_into(self._state, p, np.float32(self.alpha))
        self._prev_frame = frame
        return self._state.copy()


# --------------------------------------------------------------------------- entry points


def make_stabilizer(method: str, params: Mapping[str, Any] | None = None) -> Stabilizer:
    """A fresh stabilizer for one video; ``params`` are checked against the API ranges."""
    opts = parse_options(method, params)
    if isinstance(opts, MovingAverageOptions):
        return MovingAverage(opts.window)
    if isinstance(opts, MedianOptions):
        return Median(opts.window)
    if isinstance(opts, ExponentialOptions):
        return Exponential(opts.alpha)
    if isinstance(opts, ConfidenceGatedOptions):
        return ConfidenceGated(opts.combine_with_previous_ratio)
    if isinstance(opts, HysteresisOptions):
        return Hysteresis(opts.low, opts.high)
    if isinstance(opts, FlowEmaOptions):
        return FlowEma(opts.alpha, opts.flow_preset, opts.flow_max_side)
    raise AssertionError(f"no stabilizer for options {type(opts).__name__}")


def stabilize_sequence(
    probs: np.ndarray | Sequence[np.ndarray],
    frames: np.ndarray | Iterable[np.ndarray] | None = None,
    method: str | Stabilizer = "exponential",
    params: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """Stabilize a whole clip held in memory: (T, H, W) float32.

    ``method`` is an API method name (``params`` validated against the API ranges) or a
    ready Stabilizer instance (``params`` must then be None). Long videos should call
    ``step`` frame by frame instead, so memory stays bounded.
    """
    if isinstance(method, Stabilizer):
        if params:
            raise ValueError("params apply to a method name, not to a Stabilizer instance")
        stab = method
    else:
        stab = make_stabilizer(method, params)
    if stab.needs_frames and frames is None:
        raise ValueError(f"{type(stab).__name__} needs the video frames")
    empty_shape = (0, *np.shape(probs)[1:]) if isinstance(probs, np.ndarray) else (0, 0, 0)
    probs = list(probs)
    frame_list = [None] * len(probs) if frames is None else list(frames)
    if len(frame_list) != len(probs):
        raise ValueError(f"{len(probs)} probability maps but {len(frame_list)} frames")
    if not probs:
        return np.zeros(empty_shape, dtype=np.float32)
    return np.stack([stab.step(p, f) for p, f in zip(probs, frame_list)])
