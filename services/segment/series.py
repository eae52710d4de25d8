"""Per-frame quality series accumulated while frames stream past (pure).

The list-based functions in quality.py need every mask in memory; a 3000-frame video at
520 px would hold 800 MB of masks. This accumulator keeps only what the next frame needs
(the previous mask and frame), with the same definitions as quality.py. The lag search
needs the whole clip, so it runs quality.lag_frames on thumbnails of the masks (longer
side LAG_SIDE px, ~10 KB a frame): the lag is an argmax over shifts, which thumbnails
preserve.
"""

from __future__ import annotations

import cv2
import numpy as np

from services.contracts.records import SeriesReport
from services.segment import quality
from services.segment.flow import DisFlow, warp


class SeriesAccumulator:
    def __init__(self, *, max_lag: int = 10, flow: DisFlow | None = None):
        self.max_lag = max_lag
        self.flow = flow or DisFlow()
        self.iou: list[float] = []  # mask t vs mask t-1 (first frame: none)
        self.dice: list[float] = []
        self.warped_iou: list[float] = []  # mask t vs mask t-1 warped into frame t
        self.iou_truth: list[float] = []  # mask t vs ground truth t, when given
        self._thumbs: list[np.ndarray] = []
        self._truth_thumbs: list[np.ndarray] = []
        self._prev_mask: np.ndarray | None = None
        self._prev_prepared: np.ndarray | None = None

    def add(self, mask: np.ndarray, frame_bgr: np.ndarray, truth: np.ndarray | None = None) -> None:
        mask = mask.astype(bool, copy=False)
        prepared = self.flow.prepare(frame_bgr)
        if self._prev_mask is not None and self._prev_prepared is not None:  # set together
            self.iou.append(quality.iou(mask, self._prev_mask))
            self.dice.append(quality.dice(mask, self._prev_mask))
            sampling = self.flow.sampling_map(self._prev_prepared, prepared, mask.shape)
            # As quality.flow_warped_consistency: warped soft, cut at one half.
            moved = warp(self._prev_mask.astype(np.float32), sampling) > 0.5
            self.warped_iou.append(quality.iou(mask, moved))
        if truth is not None:
            truth = truth.astype(bool, copy=False)
            self.iou_truth.append(quality.iou(mask, truth))
            self._thumbs.append(_thumb(mask))
            self._truth_thumbs.append(_thumb(truth))
        self._prev_mask, self._prev_prepared = mask, prepared

    def lag_frames(self) -> int | None:
        """Frames the masks trail the ground truth by (negative: they lead); None without truth."""
        if not self._thumbs:
            return None
        return quality.lag_frames(self._thumbs, self._truth_thumbs, self.max_lag)

    def report(self) -> SeriesReport:
        """JSON-safe: per-frame series and their summaries (plain floats only)."""
        instability = [1.0 - v for v in self.iou]
        out: SeriesReport = {
            "series": {"iou": self.iou, "dice": self.dice, "instability": instability, "warped_iou": self.warped_iou},
            "summary": {
                "iou": quality.summary(self.iou),
                "dice": quality.summary(self.dice),
                "instability": quality.summary(instability),
                "warped_iou": quality.summary(self.warped_iou),
            },
        }
        if self.iou_truth:
            out["series"]["iou_truth"] = self.iou_truth
            out["summary"]["iou_truth"] = quality.summary(self.iou_truth)
            out["summary"]["lag_frames"] = self.lag_frames()
        return out


LAG_SIDE = 96


def _thumb(mask: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    scale = min(1.0, LAG_SIDE / max(h, w))
    if scale == 1.0:
        return mask.copy()
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
