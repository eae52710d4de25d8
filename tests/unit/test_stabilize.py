"""Temporal mask stabilizers: invariants under hypothesis, API option ranges, and
behaviour on synthetic video with exact ground truth and injected flicker."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.segment import quality
from services.segment.stabilize import (
    METHODS,
    OPTIONS,
    ConfidenceGated,
    Exponential,
    FlowEma,
    Hysteresis,
    Median,
    MovingAverage,
    Stabilizer,
    binarize,
    make_stabilizer,
    median_network,
    parse_options,
    stabilize_sequence,
)
from testbed.synthetic_video import make_video, noisy_probs

PROPS = settings(max_examples=50, deadline=None)

# --------------------------------------------------------------------------- strategies


@st.composite
def clips(draw, max_frames: int = 12, max_side: int = 16):
    """(probs (T, H, W) float32 in [0, 1], frames (T, H, W, 3) uint8) with extremes
    (exact 0, 0.5, 1) and near-threshold values mixed in."""
    t = draw(st.integers(1, max_frames))
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["uniform", "extremes", "near_half"]))
    if kind == "uniform":
        probs = rng.random((t, h, w), dtype=np.float32)
    elif kind == "extremes":
        probs = rng.choice(np.array([0.0, 0.5, 1.0], np.float32), (t, h, w))
    else:
        probs = np.clip(0.5 + rng.normal(0, 0.05, (t, h, w)), 0, 1).astype(np.float32)
    frames = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    return probs, frames


@st.composite
def api_params(draw, method: str):
    """Parameters inside the API ranges for ``method``."""
    if method in ("moving_average", "median"):
        return {"window": draw(st.sampled_from([3, 5, 7, 9]))}
    unit = st.floats(0.1, 0.9)
    if method == "exponential":
        return {"alpha": draw(unit)}
    if method == "confidence_gated":
        return {"combine_with_previous_ratio": draw(unit)}
    if method == "hysteresis":
        low = draw(st.floats(0.01, 0.98))
        high = draw(st.floats(low + 0.005, 0.995))
        return {"low": low, "high": high}
    return {"alpha": draw(unit), "flow_preset": draw(st.sampled_from(["ultrafast", "fast"]))}


@st.composite
def configured(draw):
    method = draw(st.sampled_from(METHODS))
    return method, draw(api_params(method))


def run(method: str | Stabilizer, params, probs, frames) -> np.ndarray:
    return stabilize_sequence(probs, frames, method, params)


# --------------------------------------------------------------------------- invariants


@PROPS
@given(configured(), clips())
def test_outputs_are_float32_maps_in_unit_range(config, clip):
    method, params = config
    probs, frames = clip
    out = run(method, params, probs, frames)
    assert out.dtype == np.float32 and out.shape == probs.shape
    assert np.all((out >= 0.0) & (out <= 1.0))


@PROPS
@given(
    configured(),
    st.floats(0.0, 1.0, width=32),
    st.integers(1, 12),
    st.integers(1, 16),
    st.integers(1, 16),
    st.integers(0, 2**32 - 1),
)
def test_constant_sequence_is_a_fixed_point(config, value, n, h, w, seed):
    method, params = config
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    if method == "hysteresis":
        # Hysteresis outputs a mask: a constant binary mask must come back unchanged.
        probs = np.repeat((rng.random((1, h, w)) < 0.5).astype(np.float32), n, axis=0)
        assert np.array_equal(run(method, params, probs, frames), probs)
        return
    probs = np.full((n, h, w), value, np.float32)
    out = run(method, params, probs, frames)
    if method == "flow_ema":
        # Warping interpolates with float weights, which may not sum to exactly 1.
        np.testing.assert_allclose(out, probs, rtol=0, atol=1e-6)
    else:
        assert np.array_equal(out, probs)


@PROPS
@given(
    st.sampled_from(["moving_average", "median", "exponential", "confidence_gated"]),
    st.data(),
    st.integers(1, 12),
    st.integers(1, 16),
    st.integers(1, 16),
    st.integers(0, 2**32 - 1),
)
def test_map_constant_in_time_is_a_fixed_point(method, data, n, h, w, seed):
    """Not just a flat value: any map repeated in time stays itself (no spatial blur)."""
    params = data.draw(api_params(method))
    rng = np.random.default_rng(seed)
    probs = np.repeat(rng.random((1, h, w), dtype=np.float32), n, axis=0)
    assert np.array_equal(run(method, params, probs, None), probs)


@PROPS
@given(clips())
def test_window_one_and_alpha_one_are_the_identity(clip):
    probs, frames = clip
    for stab in (MovingAverage(1), Median(1), Exponential(1.0), FlowEma(1.0), ConfidenceGated(0.0)):
        assert np.array_equal(run(stab, None, probs, frames), probs), type(stab).__name__


@PROPS
@given(configured(), clips(max_frames=12), st.data())
def test_causal_output_at_t_ignores_later_frames(config, clip, data):
    method, params = config
    probs, frames = clip
    t = data.draw(st.integers(0, len(probs) - 1))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    probs2, frames2 = probs.copy(), frames.copy()
    probs2[t + 1 :] = rng.random(probs2[t + 1 :].shape, dtype=np.float32)
    frames2[t + 1 :] = rng.integers(0, 256, frames2[t + 1 :].shape, dtype=np.uint8)
    a = run(method, params, probs, frames)
    b = run(method, params, probs2, frames2)
    assert np.array_equal(a[: t + 1], b[: t + 1])


@PROPS
@given(st.integers(1, 9), clips())
def test_moving_average_and_median_match_their_definitions(window, clip):
    probs, _ = clip
    ma = run(MovingAverage(window), None, probs, None)
    med = run(Median(window), None, probs, None)
    for t in range(len(probs)):
        recent = probs[max(0, t - window + 1) : t + 1].astype(np.float64)
        np.testing.assert_allclose(ma[t], recent.mean(axis=0), rtol=0, atol=1e-6)
        np.testing.assert_allclose(med[t], np.median(recent, axis=0), rtol=0, atol=1e-7)


@pytest.mark.parametrize("window", [4, 9])
def test_median_of_maps_wider_than_one_strip(window):
    """Maps are processed in strips of rows; strip edges must not show."""
    rng = np.random.default_rng(window)
    probs = rng.random((12, 70, 600), dtype=np.float32)
    out = run(Median(window), None, probs, None)
    for t in range(len(probs)):
        expected = np.median(probs[max(0, t - window + 1) : t + 1].astype(np.float64), axis=0)
        np.testing.assert_allclose(out[t], expected, rtol=0, atol=1e-7)


@PROPS
@given(st.floats(0.1, 0.9), st.floats(0.1, 0.9), clips())
def test_exponential_and_confidence_gated_match_their_recurrences(alpha, ratio, clip):
    probs, _ = clip
    p = probs.astype(np.float64)
    ema = run(Exponential(alpha), None, probs, None)
    gated = run(ConfidenceGated(ratio), None, probs, None)
    s_ema, s_gated = p[0], p[0]
    for t in range(1, len(p)):
        s_ema = s_ema + alpha * (p[t] - s_ema)
        # What the MediaPipe polynomial approximates: the squared binary entropy in bits.
        q = np.clip(p[t], 1e-12, 1 - 1e-12)
        unsure = (-(q * np.log2(q) + (1 - q) * np.log2(1 - q))) ** 2
        s_gated = p[t] + (s_gated - p[t]) * unsure * ratio
        np.testing.assert_allclose(ema[t], s_ema, rtol=0, atol=1e-5)
        # Polynomial error ≤ 0.002 per step, damped by the recursion (weight ≤ 0.9).
        np.testing.assert_allclose(gated[t], s_gated, rtol=0, atol=0.02)


@PROPS
@given(st.floats(0.05, 0.9), st.floats(0.01, 0.09), clips())
def test_hysteresis_switches_only_past_the_thresholds(low, gap, clip):
    high = min(low + gap, 0.99)
    probs, _ = clip
    out = run(Hysteresis(low, high), None, probs, None)
    assert set(np.unique(out)) <= {0.0, 1.0}
    on = probs[0] > (low + high) / 2
    for t in range(len(probs)):
        if t:
            on = np.where(probs[t] > high, True, np.where(probs[t] < low, False, on))
        assert np.array_equal(out[t].astype(bool), on)


def test_median_network_selects_the_median_of_every_zero_one_input():
    """0-1 principle: a comparator network that gets all 0/1 inputs right is right for all."""
    for n in range(1, 10):
        steps = median_network(n)
        for bits in range(2**n):
            v = [(bits >> i) & 1 for i in range(n)]
            for a, b, keep_min, keep_max in steps:
                lo, hi = min(v[a], v[b]), max(v[a], v[b])
                if keep_min:
                    v[a] = lo
                if keep_max:
                    v[b] = hi
            ordered = sorted((bits >> i) & 1 for i in range(n))
            assert (v[(n - 1) // 2], v[n // 2]) == (ordered[(n - 1) // 2], ordered[n // 2])


@pytest.mark.parametrize("method", METHODS)
def test_state_does_not_grow_with_video_length(method):
    """Memory is bounded per pixel: the stabilizer's arrays after 60 frames are the
    same size as after 10."""
    rng = np.random.default_rng(1)
    probs = rng.random((60, 12, 12), dtype=np.float32)
    frames = rng.integers(0, 256, (60, 12, 12, 3), dtype=np.uint8)
    stab = make_stabilizer(method, {"window": 9} if method in ("moving_average", "median") else {})

    def held_bytes() -> int:
        return sum(v.nbytes for v in vars(stab).values() if isinstance(v, np.ndarray))

    sizes = []
    for t in range(60):
        out = stab.step(probs[t], frames[t])
        out[:] = 0.5  # the caller owns the result: writing to it must not disturb the state
        if t in (9, 59):
            sizes.append(held_bytes())
    assert sizes[0] == sizes[1] > 0


def test_step_returns_a_fresh_array_the_caller_may_keep():
    stab = make_stabilizer("exponential", {"alpha": 0.5})
    first = stab.step(np.full((4, 4), 1.0, np.float32))
    stab.step(np.zeros((4, 4), np.float32))
    assert np.all(first == 1.0)


def test_binarize_is_strictly_above_the_threshold():
    p = np.array([[0.0, 0.5, 0.5001, 1.0]], np.float32)
    assert binarize(p).tolist() == [[False, False, True, True]]
    assert binarize(p, 0.9).tolist() == [[False, False, False, True]]


# --------------------------------------------------------------------------- options and errors


@pytest.mark.parametrize(
    "method, params, range_text",
    [
        ("moving_average", {"window": 1}, "3–9"),
        ("moving_average", {"window": 4}, "odd"),
        ("moving_average", {"window": 11}, "3–9"),
        ("median", {"window": 2}, "3–9"),
        ("median", {"window": "five"}, "3–9"),
        ("exponential", {"alpha": 0.05}, "0.1–0.9"),
        ("exponential", {"alpha": 1.0}, "0.1–0.9"),
        ("exponential", {"alpha": float("nan")}, "0.1–0.9"),
        ("confidence_gated", {"combine_with_previous_ratio": 0.95}, "0.1–0.9"),
        ("hysteresis", {"low": 0.0, "high": 0.5}, "between 0 and 1"),
        ("hysteresis", {"low": 0.3, "high": 1.0}, "between 0 and 1"),
        ("hysteresis", {"low": 0.6, "high": 0.4}, "greater than low"),
        ("hysteresis", {"low": 0.5, "high": 0.5}, "greater than low"),
        ("flow_ema", {"alpha": 0.0}, "0.1–0.9"),
        ("flow_ema", {"flow_max_side": 16}, "64–1024"),
        ("flow_ema", {"flow_preset": "medium"}, "ultrafast"),
    ],
)
def test_out_of_range_params_are_refused_naming_the_range(method, params, range_text):
    with pytest.raises(ValueError, match=range_text):
        make_stabilizer(method, params)


def test_unknown_method_or_param_is_refused():
    with pytest.raises(ValueError, match="moving_average, median, exponential"):
        make_stabilizer("gaussian", {})
    with pytest.raises(ValueError, match="Extra inputs"):
        make_stabilizer("median", {"alpha": 0.5})


@pytest.mark.parametrize("method", METHODS)
def test_option_models_are_frozen_and_describe_their_ranges(method):
    opts = parse_options(method)
    with pytest.raises(ValueError):
        setattr(opts, next(iter(type(opts).model_fields)), 0.5)
    schema = OPTIONS[method].model_json_schema()
    assert schema["additionalProperties"] is False
    for name, prop in schema["properties"].items():
        assert prop.get("description"), (method, name)
    assert isinstance(make_stabilizer(method), Stabilizer)


def test_window_range_in_description():
    desc = OPTIONS["median"].model_json_schema()["properties"]["window"]["description"]
    assert "3–9" in desc and "odd" in desc


def test_low_level_filters_accept_the_mathematical_ranges_only():
    for bad in (
        lambda: MovingAverage(0),
        lambda: Median(2.5),
        lambda: Exponential(0.0),
        lambda: Exponential(1.5),
        lambda: ConfidenceGated(1.1),
        lambda: Hysteresis(0.5, 0.5),
        lambda: FlowEma(0.5, flow_preset="slow"),
    ):
        with pytest.raises(ValueError):
            bad()


def test_stream_errors_are_clear():
    flow = make_stabilizer("flow_ema")
    with pytest.raises(ValueError, match="needs the video frame"):
        flow.step(np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="needs the video frames"):
        stabilize_sequence(np.zeros((2, 8, 8), np.float32), None, "flow_ema")
    with pytest.raises(ValueError, match="3 probability maps but 2 frames"):
        stabilize_sequence(np.zeros((3, 8, 8), np.float32), np.zeros((2, 8, 8, 3), np.uint8), "flow_ema")
    stab = make_stabilizer("median")
    with pytest.raises(ValueError, match="2-D"):
        stab.step(np.zeros((8, 8, 1), np.float32))
    stab.step(np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="size changed"):
        stab.step(np.zeros((8, 9), np.float32))
    stab.reset()
    assert stab.step(np.ones((8, 9), np.float32)).shape == (8, 9)
    for bad in (
        np.full((8, 9), np.nan, np.float32),
        np.full((8, 9), 3.5, np.float32),
        np.full((8, 9), -0.1, np.float32),
    ):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            stab.step(bad)


def test_flow_ema_accepts_frames_at_another_resolution_than_the_maps():
    video = make_video(6, 48, 64, speed=2.0, seed=3)
    probs = noisy_probs(video.masks, seed=3)
    small = np.stack([p[::2, ::2] for p in probs])
    out = stabilize_sequence(small, video.frames, "flow_ema")
    assert out.shape == small.shape and np.all((out >= 0) & (out <= 1))


# --------------------------------------------------------------------------- behaviour on synthetic video

DEFAULTS = {m: {} for m in METHODS}


def _mean_instability(probs: np.ndarray) -> float:
    return float(quality.instability(binarize(probs)).mean())


@pytest.mark.parametrize("seed", [0, 1])
def test_every_method_lowers_instability_at_the_injected_flicker_rate(seed):
    video = make_video(24, 64, 80, speed=1.0, seed=seed)
    probs = noisy_probs(video.masks, seed=seed, flicker_rate=0.3)
    raw = _mean_instability(probs)
    assert raw > 2 * float(quality.instability(video.masks).mean())  # the flicker is really there
    for method in METHODS:
        stable = _mean_instability(stabilize_sequence(probs, video.frames, method, DEFAULTS[method]))
        assert stable < 0.8 * raw, (method, stable, raw)


@pytest.fixture(scope="module")
def fast_clips():
    """An object moving half its radius per frame, with flicker, for two seeds."""
    clips_ = []
    for seed in (0, 1):
        video = make_video(30, 96, 128, speed=8.0, seed=seed)
        clips_.append((video, noisy_probs(video.masks, seed=seed)))
    return clips_


def test_flow_ema_follows_fast_motion_where_a_wide_moving_average_trails(fast_clips):
    for video, probs in fast_clips:
        raw = quality.iou_vs_truth(binarize(probs), video.masks).mean()
        flow = quality.iou_vs_truth(binarize(stabilize_sequence(probs, video.frames, "flow_ema")), video.masks).mean()
        wide = quality.iou_vs_truth(
            binarize(stabilize_sequence(probs, None, "moving_average", {"window": 9})), video.masks
        ).mean()
        assert flow >= raw - 0.03, (flow, raw)
        assert wide <= raw - 0.15, (wide, raw)
        assert wide <= flow - 0.2, (wide, flow)


def test_lag_shows_the_wide_moving_average_trailing_and_raw_in_step(fast_clips):
    for video, probs in fast_clips:
        assert quality.lag_frames(binarize(probs), video.masks) == 0
        smoothed = stabilize_sequence(probs, None, "moving_average", {"window": 9})
        assert quality.lag_frames(binarize(smoothed), video.masks) >= 1
        flow = stabilize_sequence(probs, video.frames, "flow_ema")
        assert quality.lag_frames(binarize(flow), video.masks) == 0
