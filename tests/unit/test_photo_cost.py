"""services.contracts.photo_cost: output limits, the automatic upscale, estimates
and the time limits a photo's task carries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.contracts import photo_cost as pc
from services.contracts.settings import PhotoSettings
from services.store import task_stats

LIMIT = pc.OutputLimit(100_000_000, 65_535, "KADR_MAX_OUTPUT_PIXELS")
LIMITS = dict(factor=3.0, floor_soft=600, floor_hard=900, cap=3000)


def test_an_omitted_upscale_is_the_largest_up_to_2_that_fits():
    assert pc.resolve_upscale(2000, 1500, None, LIMIT) == 2  # 3 MP: 2 (4 would fit too)
    assert pc.resolve_upscale(6000, 4000, None, LIMIT) == 2  # 24 MP x 4 = 96 MP
    assert pc.resolve_upscale(6000, 5000, None, LIMIT) == 1  # 30 MP x 4 = 120 MP: over


def test_an_asked_upscale_over_the_limit_names_the_largest_that_fits():
    with pytest.raises(pc.OutputTooLarge) as info:
        pc.resolve_upscale(6000, 4000, 4, LIMIT)
    assert info.value.largest == 2
    assert "24000x16000" in info.value.message and "largest upscale that fits is 2" in info.value.message
    with pytest.raises(pc.OutputTooLarge) as info:
        pc.resolve_upscale(12000, 10000, 1, pc.OutputLimit(100_000_000, 65535, "x"))
    assert info.value.largest == 0 and "send a smaller photo" in info.value.message


def test_webp_outputs_are_bounded_by_side_and_by_the_workers_memory():
    lim = pc.output_limit("webp", max_output_pixels=100_000_000, memory_budget_bytes=400 * 2**20)
    assert lim.max_side == 16_383 and lim.max_pixels < 100_000_000 and "memory budget" in lim.reason
    assert pc.resolve_upscale(5000, 4000, None, lim) == 1  # 10000x8000 WebP does not fit 400 MiB
    with pytest.raises(pc.OutputTooLarge, match="16383"):
        pc.resolve_upscale(9000, 500, 2, lim)
    jpeg = pc.output_limit("jpeg", max_output_pixels=100_000_000, memory_budget_bytes=400 * 2**20)
    assert jpeg.max_pixels == 100_000_000  # JPEG is written in strips: only the operator's limit


def test_heic_and_avif_results_are_jpeg():
    assert pc.output_format("heic") == pc.output_format("avif") == "jpeg"
    assert pc.output_format("png") == "png"


@given(
    w=st.integers(1, 8000),
    h=st.integers(1, 8000),
    up=st.one_of(st.none(), st.integers(1, 4)),
    max_px=st.integers(1, 200_000_000),
)
def test_a_resolved_upscale_always_fits(w, h, up, max_px):
    lim = pc.OutputLimit(max_px, 65_535, "x")
    try:
        u = pc.resolve_upscale(w, h, up, lim)
    except pc.OutputTooLarge as e:
        assert not pc.fits(w, h, up or 1, lim)
        assert e.largest == max((x for x in pc.UPSCALES if pc.fits(w, h, x, lim)), default=0)
    else:
        assert pc.fits(w, h, u, lim) and (up is None or u == up) and u <= (4 if up else 2)


def test_the_estimate_grows_with_size_and_the_limits_follow_it_up_to_the_cap():
    params = {"quality": "medium", "upscale": 2, "max_faces": 20}
    small = pc.estimate(2000, 1500, params, {}, **LIMITS)
    big = pc.estimate(6000, 4000, params, {}, **LIMITS)
    assert 0 < small.seconds < big.seconds
    assert small.soft_time_limit == 600  # the floor: a small photo keeps the default limits
    assert big.soft_time_limit > 600 and big.time_limit == big.soft_time_limit + 300
    assert big.soft_time_limit == min(3000, int(3 * big.worst_seconds))
    huge = pc.estimate(6000, 6000, {**params, "quality": "high"}, {}, **LIMITS)
    assert huge.soft_time_limit == 3000  # capped below the broker's visibility timeout


def test_measured_rates_replace_the_reference_ones():
    params = {"quality": "medium", "upscale": 2, "max_faces": 3}
    fast_gpu = pc.estimate(4000, 3000, params, {"medium:x2": 0.05, "face": 0.2, "faces_per_photo": 1.0}, **LIMITS)
    cpu = pc.estimate(4000, 3000, params, {}, **LIMITS)
    assert fast_gpu.seconds < cpu.seconds / 10
    assert fast_gpu.worst_seconds == pytest.approx(1.0 + 0.05 * 48 + 0.2 * 3)


def test_rates_are_moving_averages_per_device_and_the_slowest_device_counts(redis_client):
    task_stats.record_photo(
        redis_client, "cuda", quality="medium", upscale=2, seconds_per_output_mp=0.1, face_seconds=0.3, faces=2
    )
    task_stats.record_photo(
        redis_client, "cpu", quality="medium", upscale=2, seconds_per_output_mp=4.0, face_seconds=4.0, faces=1
    )
    task_stats.record_photo(
        redis_client, "cpu", quality="medium", upscale=2, seconds_per_output_mp=2.0, face_seconds=None, faces=0
    )
    rates = task_stats.photo_rates(redis_client)
    assert rates["medium:x2"] == pytest.approx(4.0 * 0.7 + 2.0 * 0.3)
    assert rates["face"] == 4.0 and rates["faces_per_photo"] == 2.0


def test_settings_keep_every_photo_limit_below_the_visibility_timeout():
    PhotoSettings(photo_time_limit_cap_seconds=3000)
    with pytest.raises(ValidationError, match="visibility_timeout"):
        PhotoSettings(photo_time_limit_cap_seconds=3400)
    with pytest.raises(ValidationError, match="at least task_soft_time_limit"):
        PhotoSettings(photo_time_limit_cap_seconds=100)
    PhotoSettings(visibility_timeout_seconds=7200, photo_time_limit_cap_seconds=6000)


def test_prescaled_photos_have_rates_of_their_own():
    params = {"quality": "medium", "upscale": 2, "max_faces": 0}
    full = pc.estimate(4000, 3000, params, {}, **LIMITS)
    pre = pc.estimate(4000, 3000, {**params, "prescale": True}, {}, **LIMITS)
    assert pre.seconds < full.seconds / 3
    # A fleet that ran prescaled photos fast must not shorten a full one's limits.
    rates = {"medium:x2:prescale": 0.5}
    assert pc.estimate(4000, 3000, params, rates, **LIMITS).seconds == full.seconds
