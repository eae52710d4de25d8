"""Flicker and accuracy metrics on boolean masks.

Stability is measured between consecutive masks: IoU (and Dice) of frame t with
frame t-1, and instability = 1 - IoU. Raw consecutive IoU also drops with genuine
motion, so ``flow_warped_consistency`` compares mask t with mask t-1 carried along the
optical flow, which scores a moving but steady mask as stable. With ground truth,
``iou_vs_truth`` measures accuracy and ``lag_frames`` how far a mask trails the truth
in time (what heavy temporal smoothing costs on moving objects).

Both-empty convention: two empty masks agree perfectly, so IoU and Dice are 1.0
(a clip where the target class is absent everywhere must not read as flickering).

Per-frame series are float64 numpy arrays; ``summary`` and ``improvement_pct`` return
plain Python numbers, ready for the JSON job store.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from services.segment.flow import DisFlow, warp

MaskSeq = np.ndarray | Sequence[np.ndarray]


def _mask(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m)
    if m.dtype == bool:
        return m
    if np.issubdtype(m.dtype, np.integer):
        nonzero: np.ndarray = m != 0
        return nonzero
    raise TypeError(f"masks must be boolean (or integer 0/non-zero), got {m.dtype}; binarize probability maps first")


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _mask(a), _mask(b)
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}")
    return a, b


def _counts(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int]:
    """|A ∩ B|, |A|, |B|."""
    a, b = _pair(a, b)
    return int(np.count_nonzero(a & b)), int(np.count_nonzero(a)), int(np.count_nonzero(b))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """|A ∩ B| / |A ∪ B|; 1.0 when both are empty."""
    inter, na, nb = _counts(a, b)
    union = na + nb - inter
    return 1.0 if union == 0 else inter / union


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """2 |A ∩ B| / (|A| + |B|); 1.0 when both are empty."""
    inter, na, nb = _counts(a, b)
    total = na + nb
    return 1.0 if total == 0 else 2.0 * inter / total


def _masks(masks: MaskSeq) -> list[np.ndarray]:
    return [_mask(m) for m in masks]


def consecutive_iou(masks: MaskSeq) -> np.ndarray:
    """IoU of each mask with the one before it: T-1 values (empty for T < 2)."""
    ms = _masks(masks)
    return np.array([iou(ms[t - 1], ms[t]) for t in range(1, len(ms))], dtype=np.float64)


def consecutive_dice(masks: MaskSeq) -> np.ndarray:
    """Dice of each mask with the one before it: T-1 values (empty for T < 2)."""
    ms = _masks(masks)
    return np.array([dice(ms[t - 1], ms[t]) for t in range(1, len(ms))], dtype=np.float64)


def instability(masks: MaskSeq) -> np.ndarray:
    """1 - consecutive IoU per frame transition: 0 = identical, 1 = disjoint."""
    return 1.0 - consecutive_iou(masks)


def flow_warped_consistency(
    masks: MaskSeq, frames: Iterable[np.ndarray], *, flow_preset: str = "ultrafast", flow_max_side: int = 320
) -> np.ndarray:
    """IoU of mask t with mask t-1 warped into frame t by DIS optical flow: T-1 values.

    Unlike ``consecutive_iou``, a mask that follows a moving object scores high; what
    remains is change the motion does not explain, i.e. flicker.
    """
    ms = _masks(masks)
    frame_list = list(frames)
    if len(frame_list) != len(ms):
        raise ValueError(f"{len(ms)} masks but {len(frame_list)} frames")
    flow = DisFlow(flow_preset, flow_max_side)
    out = np.empty(max(len(ms) - 1, 0), dtype=np.float64)
    prev: np.ndarray | None = None  # the previous frame, prepared
    for t, (m, f) in enumerate(zip(ms, frame_list)):
        cur = flow.prepare(f)
        if prev is not None:
            mapping = flow.sampling_map(prev, cur, m.shape)
            # Warped as a soft map and cut at one half: a sub-pixel shift moves the
            # boundary instead of rounding it away.
            carried = warp(ms[t - 1].astype(np.float32), mapping) > 0.5
            out[t - 1] = iou(carried, m)
        prev = cur
    return out


def iou_vs_truth(masks: MaskSeq, truth_masks: MaskSeq) -> np.ndarray:
    """IoU of each mask with the ground truth of the same frame: T values."""
    ms, gt = _masks(masks), _masks(truth_masks)
    if len(ms) != len(gt):
        raise ValueError(f"{len(ms)} masks but {len(gt)} ground-truth masks")
    return np.array([iou(m, g) for m, g in zip(ms, gt)], dtype=np.float64)


def lag_frames(masks: MaskSeq, truth_masks: MaskSeq, max_lag: int = 10) -> int:
    """The shift L in [-max_lag, max_lag] maximising the mean IoU of mask t with truth t-L.

    L > 0: the masks trail the truth by L frames (what smoothing does to a moving
    object); 0 for masks in step with it. Every shift is scored on the same frames
    (t in [max_lag, T - max_lag)), so a static scene ties all shifts exactly and the
    tie goes to the smallest |L| (then to the positive side). ``max_lag`` is reduced
    to (T - 1) // 2 for short clips.
    """
    ms, gt = _masks(masks), _masks(truth_masks)
    if len(ms) != len(gt):
        raise ValueError(f"{len(ms)} masks but {len(gt)} ground-truth masks")
    if max_lag < 0:
        raise ValueError(f"max_lag must be >= 0, got {max_lag}")
    n = len(ms)
    k = min(max_lag, (n - 1) // 2)
    if k <= 0:
        return 0
    frames = range(k, n - k)
    best_lag, best = 0, -math.inf
    for lag in sorted(range(-k, k + 1), key=lambda L: (abs(L), -L)):
        score = math.fsum(iou(ms[t], gt[t - lag]) for t in frames)
        if score > best:
            best_lag, best = lag, score
    return best_lag


def summary(series: Iterable[float]) -> dict[str, float | int | None]:
    """{mean, p5, p50, p95, min, max, n} as plain Python numbers (JSON-safe).

    An empty series (a clip of one frame) gives n = 0 and None for the statistics,
    since NaN is not valid JSON.
    """
    x = np.asarray(list(series) if not isinstance(series, np.ndarray) else series, dtype=np.float64).ravel()
    if x.size == 0:
        return {"mean": None, "p5": None, "p50": None, "p95": None, "min": None, "max": None, "n": 0}
    p5, p50, p95 = np.percentile(x, [5, 50, 95])
    return {
        "mean": float(x.mean()),
        "p5": float(p5),
        "p50": float(p50),
        "p95": float(p95),
        "min": float(x.min()),
        "max": float(x.max()),
        "n": int(x.size),
    }


def improvement_pct(raw_value: float | None, stable_value: float | None) -> float | None:
    """Relative reduction of a lower-is-better value such as mean instability, in %.

    Positive = the stabilized masks are better (50.0: half the flicker). 0.0 when both
    are 0; None when only the raw value is 0 (any change from perfect is an undefined
    percentage, and -inf is not JSON) or so close to 0 that the ratio overflows, and when
    either is None (a clip of one frame has no consecutive pair to compare).
    """
    if raw_value is None or stable_value is None:
        return None
    raw, stable = float(raw_value), float(stable_value)
    if raw == 0.0:
        return 0.0 if stable == 0.0 else None
    pct = 100.0 * (raw - stable) / raw
    if not math.isfinite(pct):  # a raw value so near 0 that the ratio overflows
        return None
    # Capped: rounding can put a perfect result a hair above 100 %.
    return min(100.0, pct)
