"""The streaming accumulator agrees with the list-based metrics it stands in for."""

from __future__ import annotations

import numpy as np
import pytest

from services.segment import quality
from services.segment.series import SeriesAccumulator
from services.segment.stabilize import binarize, stabilize_sequence
from testbed.synthetic_video import make_video, noisy_probs


@pytest.mark.parametrize("method", ["exponential", "moving_average"])
def test_streaming_series_match_quality(method):
    video = make_video(30, 96, 128, speed=6.0, seed=2)
    probs = noisy_probs(video.masks, seed=2, flicker_rate=0.3)
    masks = binarize(
        stabilize_sequence(
            probs, video.frames, method=method, params={"window": 9} if method == "moving_average" else {}
        )
    )
    acc = SeriesAccumulator(max_lag=6)
    for m, f, t in zip(masks, video.frames, video.masks):
        acc.add(m, f, t)
    r = acc.report()
    np.testing.assert_allclose(r["series"]["iou"], quality.consecutive_iou(masks))
    np.testing.assert_allclose(r["series"]["dice"], quality.consecutive_dice(masks))
    np.testing.assert_allclose(r["series"]["warped_iou"], quality.flow_warped_consistency(masks, video.frames))
    np.testing.assert_allclose(r["series"]["iou_truth"], quality.iou_vs_truth(masks, video.masks))
    assert r["summary"]["lag_frames"] == quality.lag_frames(masks, video.masks, 6)
    if method == "moving_average":
        assert r["summary"]["lag_frames"] >= 1  # a wide window trails the moving object


def test_report_without_truth_has_no_truth_series():
    video = make_video(5, 32, 32, seed=1)
    acc = SeriesAccumulator()
    for m, f in zip(video.masks, video.frames):
        acc.add(m, f)
    r = acc.report()
    assert "iou_truth" not in r["series"] and "lag_frames" not in r["summary"]
    assert r["summary"]["iou"]["n"] == 4
