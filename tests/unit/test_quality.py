"""Flicker and accuracy metrics: invariants under hypothesis, conventions users rely on
(empty masks, JSON-safe summaries), and the flow-based and lag metrics on synthetic
video with exact ground truth."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from services.segment import quality
from services.segment.flow import DisFlow, warp, working_size
from testbed.synthetic_video import make_video

PROPS = settings(max_examples=60, deadline=None)

shapes = st.tuples(st.integers(1, 16), st.integers(1, 16))


@st.composite
def mask_pairs(draw):
    shape = draw(shapes)
    a = draw(hnp.arrays(bool, shape))
    b = draw(hnp.arrays(bool, shape))
    return a, b


@st.composite
def mask_clips(draw, max_frames: int = 12):
    n = draw(st.integers(0, max_frames))
    h, w = draw(shapes)
    return draw(hnp.arrays(bool, (n, h, w)))


# --------------------------------------------------------------------------- iou / dice


@PROPS
@given(mask_pairs())
def test_iou_and_dice_are_symmetric_bounded_and_consistent(pair):
    a, b = pair
    i, d = quality.iou(a, b), quality.dice(a, b)
    assert i == quality.iou(b, a) and d == quality.dice(b, a)
    assert 0.0 <= i <= d <= 1.0
    assert math.isclose(d, 2 * i / (1 + i), rel_tol=1e-12, abs_tol=1e-12)
    assert type(i) is float and type(d) is float


@PROPS
@given(hnp.arrays(bool, shapes))
def test_identical_masks_score_one(a):
    assert quality.iou(a, a.copy()) == 1.0 and quality.dice(a, a.copy()) == 1.0


def test_empty_masks_agree_and_disjoint_masks_do_not():
    empty = np.zeros((4, 4), bool)
    assert quality.iou(empty, empty) == 1.0 and quality.dice(empty, empty) == 1.0
    a, b = empty.copy(), empty.copy()
    a[0, 0], b[3, 3] = True, True
    assert quality.iou(a, b) == 0.0 and quality.dice(a, b) == 0.0
    assert quality.iou(a, empty) == 0.0
    b[0, 0] = True
    assert quality.iou(a, b) == 0.5 and math.isclose(quality.dice(a, b), 2 / 3)


def test_masks_must_be_boolean_and_the_same_size():
    with pytest.raises(TypeError, match="binarize"):
        quality.iou(np.zeros((2, 2), np.float32), np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match="shapes differ"):
        quality.dice(np.zeros((2, 2), bool), np.zeros((2, 3), bool))
    # 0/255 uint8 masks, as image files store them, are accepted.
    assert quality.iou(np.full((2, 2), 255, np.uint8), np.ones((2, 2), bool)) == 1.0


# --------------------------------------------------------------------------- series


@PROPS
@given(mask_clips())
def test_consecutive_series_have_one_value_per_transition(masks):
    ious, dices, unstable = (
        quality.consecutive_iou(masks),
        quality.consecutive_dice(masks),
        quality.instability(masks),
    )
    assert len(ious) == len(dices) == len(unstable) == max(len(masks) - 1, 0)
    np.testing.assert_array_equal(unstable, 1.0 - ious)
    assert np.all((0 <= ious) & (ious <= dices) & (dices <= 1))
    for t in range(1, len(masks)):
        assert ious[t - 1] == quality.iou(masks[t - 1], masks[t])


@PROPS
@given(hnp.arrays(bool, shapes), st.integers(1, 12))
def test_a_mask_that_never_changes_has_no_instability(mask, n):
    masks = [mask] * n
    assert np.all(quality.instability(masks) == 0.0)
    assert np.all(quality.consecutive_dice(masks) == 1.0)
    assert np.all(quality.iou_vs_truth(masks, masks) == 1.0)


# --------------------------------------------------------------------------- summary / improvement


@PROPS
@given(st.lists(st.floats(0.0, 1.0), max_size=40), st.sampled_from([list, np.float32, np.float64]))
def test_summary_is_plain_json_safe_numbers(values, kind):
    series = values if kind is list else np.asarray(values, dtype=kind)
    s = quality.summary(series)
    assert set(s) == {"mean", "p5", "p50", "p95", "min", "max", "n"}
    assert type(s["n"]) is int and s["n"] == len(values)
    json.loads(json.dumps(s, allow_nan=False))  # strict JSON: no numpy types, no NaN
    if not values:
        assert all(s[k] is None for k in s if k != "n")
        return
    for k in ("mean", "p5", "p50", "p95", "min", "max"):
        assert type(s[k]) is float
    assert s["min"] <= s["p5"] <= s["p50"] <= s["p95"] <= s["max"]
    assert s["min"] <= s["mean"] <= s["max"] or math.isclose(s["mean"], s["min"])


def test_summary_of_a_known_series():
    s = quality.summary(np.arange(101, dtype=np.float64) / 100)
    assert s == pytest.approx({"mean": 0.5, "p5": 0.05, "p50": 0.5, "p95": 0.95, "min": 0.0, "max": 1.0, "n": 101})


@PROPS
@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_improvement_is_positive_when_instability_drops(raw, stable):
    pct = quality.improvement_pct(np.float64(raw), np.float64(stable))
    if raw == 0.0:
        assert pct == (0.0 if stable == 0.0 else None)
        return
    if pct is None:  # only when the ratio overflows a float
        assert not math.isfinite(100.0 * (raw - stable) / raw)
        return
    assert type(pct) is float
    assert (pct > 0) == (stable < raw) and (pct < 0) == (stable > raw)
    assert pct <= 100.0
    json.dumps(pct, allow_nan=False)


def test_improvement_examples():
    assert quality.improvement_pct(0.4, 0.1) == pytest.approx(75.0)
    assert quality.improvement_pct(0.2, 0.3) == pytest.approx(-50.0)
    assert quality.improvement_pct(0.0, 0.0) == 0.0
    assert quality.improvement_pct(0.0, 0.1) is None


# --------------------------------------------------------------------------- flow


def test_flow_aligns_a_translated_frame():
    """The sign convention everything else relies on: warping the previous frame's map
    with sampling_map(prev, cur) lands it on the current frame."""
    video = make_video(2, 96, 128, speed=0.0, seed=5, shapes=())
    big = video.frames[0]
    dx, dy = 5, 3
    prev, cur = big[10:74, 10:106], big[10 - dy : 74 - dy, 10 - dx : 106 - dx]
    gray = prev[..., 1].astype(np.float32)
    flow = DisFlow("fast")
    mapping = flow.sampling_map(flow.prepare(prev), flow.prepare(cur), gray.shape)
    warped = warp(gray, mapping)
    inner = (slice(8, -8), slice(8, -8))
    expected = cur[..., 1].astype(np.float32)
    assert np.abs(warped[inner] - expected[inner]).mean() < 0.25 * np.abs(gray[inner] - expected[inner]).mean()


@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (12, 48), (20, 640), (640, 20), (31, 97), (16, 16)])
def test_flow_survives_tiny_and_skewed_frames(shape):
    """OpenCV's DIS crashes the process on some of these sizes unless they are rescaled."""
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for _ in range(2))
    flow = DisFlow("ultrafast", max_side=320)
    mapping = flow.sampling_map(flow.prepare(a), flow.prepare(b), shape)
    assert mapping.shape == (*shape, 2) and np.isfinite(mapping).all()
    h, w = working_size(*shape, 320)
    assert min(h, w) >= 32


def test_flow_warped_consistency_does_not_punish_real_motion():
    video = make_video(16, 96, 128, speed=6.0, seed=2)
    plain = quality.consecutive_iou(video.masks).mean()
    warped = quality.flow_warped_consistency(video.masks, video.frames)
    assert len(warped) == 15 and warped.dtype == np.float64
    assert plain < 0.7  # the object moves a lot between frames...
    assert warped.mean() > 0.9  # ...and the flow explains almost all of it


def test_flow_warped_consistency_of_static_masks_is_one():
    video = make_video(5, 48, 64, speed=0.0, seed=1)
    assert np.all(quality.flow_warped_consistency(video.masks, video.frames) == 1.0)
    with pytest.raises(ValueError, match="5 masks but 4 frames"):
        quality.flow_warped_consistency(video.masks, video.frames[:4])


# --------------------------------------------------------------------------- ground truth


@pytest.fixture(scope="module")
def moving():
    return make_video(30, 64, 80, speed=4.0, seed=7)


@pytest.mark.parametrize("shift", [0, 1, 2, 3, -2])
def test_lag_finds_a_known_shift(moving, shift):
    truth = moving.masks
    # masks[t] = truth[t - shift]: trailing by ``shift`` frames (leading when negative).
    shifted = np.roll(truth, shift, axis=0)
    assert quality.lag_frames(shifted, truth, max_lag=5) == shift


def test_lag_of_a_static_scene_is_zero_and_short_clips_are_handled():
    video = make_video(12, 48, 64, speed=0.0, seed=3)
    noisy = video.masks.copy()
    noisy[::2, :2, :2] ^= True  # flicker, but no motion to lag behind
    assert quality.lag_frames(noisy, video.masks) == 0
    assert quality.lag_frames(video.masks[:1], video.masks[:1]) == 0
    assert quality.lag_frames(video.masks[:3], video.masks[:3], max_lag=10) == 0
    with pytest.raises(ValueError, match="max_lag"):
        quality.lag_frames(video.masks, video.masks, max_lag=-1)


def test_iou_vs_truth_is_per_frame(moving):
    truth = moving.masks
    worse = truth.copy()
    worse[5] = False
    scores = quality.iou_vs_truth(worse, truth)
    assert scores.shape == (30,) and scores[5] == 0.0 and np.all(np.delete(scores, 5) == 1.0)
    with pytest.raises(ValueError, match="ground-truth"):
        quality.iou_vs_truth(truth[:3], truth)
