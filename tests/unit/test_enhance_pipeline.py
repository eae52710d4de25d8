"""services.enhance.pipeline with tiny stand-in networks: real facexlib/realesrgan code, no weights.

The face helper is a real FaceRestoreHelper whose detector and parser are stubs, so
face selection, alignment and paste-back run the production code on synthetic
detections; the upsampler is a real (kadr) RealESRGANer around a tiny network.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.enhance import models
from services.enhance.pipeline import EnhanceError, EnhanceOptions, enhance

import facexlib.utils.face_restoration_helper as frh  # noqa: E402  (after models: needs the basicsr shim)
from realesrgan import RealESRGANer  # noqa: E402
from realesrgan.archs.srvgg_arch import SRVGGNetCompact  # noqa: E402

CPU = torch.device("cpu")
FFHQ_TEMPLATE = np.array([[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
                          [201.26117, 371.41043], [313.08905, 371.15118]])


# --------------------------------------------------------------------------- stand-ins


class StubDetector:
    """RetinaFace stand-in: returns the rows it was given ([x1, y1, x2, y2, score, 5 landmarks])."""

    def __init__(self):
        self.rows = np.zeros((0, 15), dtype=np.float32)

    def detect_faces(self, image, conf_threshold=0.8):
        return self.rows.copy()


def face_row(x: float, y: float, size: float) -> np.ndarray:
    """A plausible detection: square box with FFHQ-placed landmarks."""
    landmarks = FFHQ_TEMPLATE / 512.0 * size + [x, y]
    return np.concatenate([[x, y, x + size, y + size, 0.99], landmarks.ravel()]).astype(np.float32)


class StubGFPGAN(torch.nn.Module):
    """Identity 'restoration' that can be told to fail on given calls (0-based)."""

    def __init__(self, fail_calls=()):
        super().__init__()
        self.calls = 0
        self.fail_calls = set(fail_calls)

    def forward(self, x, return_rgb=False, weight=0.5):
        call, self.calls = self.calls, self.calls + 1
        if call in self.fail_calls:
            raise RuntimeError("simulated restoration failure")
        return (x.clone(),)


def stub_parse(x):
    return (torch.zeros(1, 19, x.shape[2], x.shape[3]),)


@pytest.fixture
def restorer(monkeypatch):
    detector = StubDetector()
    monkeypatch.setattr(frh, "init_detection_model", lambda *a, **k: detector)
    monkeypatch.setattr(frh, "init_parsing_model", lambda *a, **k: stub_parse)
    helper = frh.FaceRestoreHelper(2, face_size=512, crop_ratio=(1, 1), det_model="retinaface_resnet50",
                                   save_ext="png", use_parse=True, device=CPU, model_rootpath="/nonexistent")
    r = models.Restorer(StubGFPGAN(), helper, upscale=2, bg_upsampler=None, device=CPU)
    r.detector = detector  # test handle
    return r


class OomAboveSize(SRVGGNetCompact):
    """A network that 'runs out of GPU memory' on inputs larger than ``limit`` px on a side."""

    limit = 10**9

    def forward(self, x):
        self.seen.append(max(x.shape[-2:]))
        if max(x.shape[-2:]) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return super().forward(x)


def tiny_net(cls=SRVGGNetCompact):
    torch.manual_seed(0)
    net = cls(num_in_ch=3, num_out_ch=3, num_feat=4, num_conv=1, upscale=4, act_type="prelu")
    net.seen = []
    return net


@pytest.fixture
def tiny_weights(tmp_path):
    path = tmp_path / "tiny-x4.pth"
    torch.save({"params": tiny_net().state_dict()}, path)
    return path


def make_upsampler(path, net, tile=0, cls=models.Upsampler):
    return cls(scale=4, model_path=str(path), model=net, tile=tile, tile_pad=10, pre_pad=0, device=CPU)


def flat(h, w, value=128):
    return np.full((h, w, 3), value, dtype=np.uint8)


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("upscale", 0, "greater than or equal to 1"),
        ("upscale", 5, "less than or equal to 4"),
        ("weight", 1.5, "less than or equal to 1"),
        ("weight", -0.1, "greater than or equal to 0"),
        ("weight", float("nan"), "finite number"),
        ("tile", 128, "between 256 and 512"),
        ("tile", 1024, "between 256 and 512"),
        ("max_faces", -1, "greater than or equal to 0"),
        ("quality", "ultra", "'fast', 'medium' or 'high'"),
    ],
)
def test_invalid_options_name_the_allowed_range(field, value, expected):
    with pytest.raises(ValidationError) as info:
        EnhanceOptions(**{field: value})
    assert expected in str(info.value)
    assert field in str(info.value)


def test_options_are_closed():
    with pytest.raises(ValidationError):
        EnhanceOptions(scale=2)  # unknown field: a typo must not be ignored
    opts = EnhanceOptions(weight=1, tile=256, upscale=4)  # an int weight from JSON is fine
    assert opts.weight == 1.0 and opts.tile == 256


# --------------------------------------------------------------------------- fast path and faces


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=st.integers(1, 48), w=st.integers(1, 48), upscale=st.integers(1, 4))
def test_fast_quality_without_faces_scales_the_input(restorer, h, w, upscale):
    img = flat(h, w, 77)
    result = enhance(img, restorer, None, EnhanceOptions(quality="fast", upscale=upscale))
    assert result.image.shape == (h * upscale, w * upscale, 3)
    assert result.image.dtype == np.uint8
    assert (result.faces_found, result.faces_restored, result.faces_failed) == (0, 0, 0)
    assert result.tile_used is None
    assert set(result.timings) == {"detect", "restore", "background", "paste"}
    # A flat image stays flat through a Lanczos resize.
    assert np.all(result.image == 77)


def test_grayscale_input_is_accepted_and_bad_arrays_are_refused(restorer):
    result = enhance(np.full((10, 12), 9, np.uint8), restorer, None, EnhanceOptions(quality="fast"))
    assert result.image.shape == (20, 24, 3)
    with pytest.raises(EnhanceError) as info:
        enhance(np.zeros((10, 10, 3), np.float32), restorer, None, EnhanceOptions(quality="fast"))
    assert info.value.code == "invalid_image"


def test_max_faces_keeps_the_largest_detections(restorer):
    sizes = [40, 120, 60, 100, 30, 80]  # all above the 5 px eye-distance filter
    restorer.detector.rows = np.stack([face_row(10 + 5 * i, 10 + 5 * i, s) for i, s in enumerate(sizes)])
    helper = restorer.face_helper
    kept_sizes = []
    original_align = helper.align_warp_face

    def spy_align(*a, **k):
        kept_sizes.extend(round(float(b[2] - b[0])) for b in helper.det_faces)
        return original_align(*a, **k)

    helper.align_warp_face = spy_align
    result = enhance(flat(256, 256), restorer, None, EnhanceOptions(quality="fast", max_faces=3))
    assert kept_sizes == [120, 100, 80]
    assert (result.faces_found, result.faces_restored, result.faces_failed) == (6, 3, 0)
    assert result.faces_skipped == 3
    assert result.image.shape == (512, 512, 3)
    # State of this photo must not leak into the next one.
    assert helper.det_faces == [] and helper.restored_faces == [] and helper.cropped_faces == []


def test_max_faces_zero_skips_the_detector(restorer):
    sizes = [40, 120]
    restorer.detector.rows = np.stack([face_row(10 + 5 * i, 10 + 5 * i, s) for i, s in enumerate(sizes)])
    calls = []
    original = restorer.face_helper.read_image
    restorer.face_helper.read_image = lambda img: calls.append(img.shape) or original(img)
    result = enhance(flat(48, 64), restorer, None, EnhanceOptions(quality="fast", max_faces=0, upscale=1))
    assert calls == [] and result.faces_found == 0 and result.image.shape == (48, 64, 3)


def test_only_center_face_restores_the_face_nearest_the_centre(restorer):
    restorer.detector.rows = np.stack([face_row(0, 0, 100), face_row(100, 100, 50), face_row(190, 190, 60)])
    seen = []
    helper = restorer.face_helper
    original_align = helper.align_warp_face
    helper.align_warp_face = lambda *a, **k: (seen.extend(list(b[:2]) for b in helper.det_faces),
                                              original_align(*a, **k))
    result = enhance(flat(256, 256), restorer, None,
                     EnhanceOptions(quality="fast", only_center_face=True, max_faces=5))
    assert seen == [[100, 100]]
    assert (result.faces_found, result.faces_restored) == (3, 1)


def test_unusable_detections_are_not_restored(restorer, monkeypatch):
    degenerate = face_row(10, 10, 50)
    degenerate[5] += 0.25  # marker for the patched fit below
    broken = face_row(10, 10, 50)
    broken[0] = np.nan
    restorer.detector.rows = np.stack([degenerate, broken, face_row(60, 60, 40)])
    real_fit = cv2.estimateAffinePartial2D

    def fit(src, dst, **kw):
        # OpenCV answers None when it cannot fit a similarity transform.
        return (None, None) if src[0, 0] == degenerate[5] else real_fit(src, dst, **kw)

    monkeypatch.setattr(cv2, "estimateAffinePartial2D", fit)
    result = enhance(flat(128, 128), restorer, None, EnhanceOptions(quality="fast"))
    assert result.faces_found == 2  # the NaN box is not a face; the unfittable one is, but is skipped
    assert (result.faces_restored, result.faces_failed) == (1, 0)


def test_a_failing_face_keeps_its_original_and_the_photo_succeeds(restorer):
    restorer.detector.rows = np.stack([face_row(10, 10, 80), face_row(120, 120, 60), face_row(60, 150, 40)])
    restorer.gfpgan = StubGFPGAN(fail_calls={1})
    result = enhance(flat(256, 256), restorer, None, EnhanceOptions(quality="fast", upscale=1))
    assert (result.faces_found, result.faces_restored, result.faces_failed) == (3, 2, 1)
    assert result.image.shape == (256, 256, 3)


def test_aligned_input_is_restored_directly_at_512(restorer):
    restorer.detector.rows = np.stack([face_row(0, 0, 50)])  # must not be consulted
    result = enhance(flat(300, 200, 40), restorer, None, EnhanceOptions(has_aligned=True, upscale=4))
    assert result.image.shape == (512, 512, 3)
    assert (result.faces_found, result.faces_restored, result.faces_failed) == (1, 1, 0)
    assert np.all(result.image == 40)  # identity stub: the resized face comes back


def test_medium_quality_needs_an_upsampler(restorer):
    with pytest.raises(EnhanceError) as info:
        enhance(flat(16, 16), restorer, None, EnhanceOptions(quality="medium"))
    assert info.value.code == "upsampler_unavailable"


def test_helper_state_is_cleared_when_the_background_step_fails(restorer):
    class Broken:
        tile_size = 0

        def enhance(self, img, outscale=None):
            raise ValueError("boom")

    restorer.detector.rows = np.stack([face_row(10, 10, 60)])
    with pytest.raises(ValueError):
        enhance(flat(128, 128), restorer, Broken(), EnhanceOptions(quality="high"))
    helper = restorer.face_helper
    assert helper.det_faces == [] and helper.cropped_faces == [] and helper.restored_faces == []


def test_medium_quality_uses_the_upsampler_for_the_background(restorer, tiny_weights):
    up = make_upsampler(tiny_weights, tiny_net())
    result = enhance(flat(20, 30), restorer, up, EnhanceOptions(quality="medium", upscale=3))
    assert result.image.shape == (60, 90, 3)
    assert result.tile_used == 0


# --------------------------------------------------------------------------- GPU out-of-memory policy


@pytest.mark.parametrize(
    ("limit", "tile_used", "attempts"),
    [
        (10**6, 0, [160]),  # fits: one whole-image pass
        (150, 128, [160, 160, 160, 138]),  # whole, 512, 256 fail (each is the whole image); 128+pad fits
        (90, 64, [160, 160, 160, 138, 74]),
    ],
)
def test_oom_halves_the_tile_until_it_fits(restorer, tiny_weights, limit, tile_used, attempts):
    net = tiny_net(OomAboveSize)
    net.limit = limit
    up = make_upsampler(tiny_weights, net, tile=0)
    img = np.random.default_rng(1).integers(0, 255, (160, 160, 3), dtype=np.uint8)
    result = enhance(img, restorer, up, EnhanceOptions(quality="medium", upscale=4))
    assert result.tile_used == tile_used
    assert result.image.shape == (640, 640, 3)
    assert net.seen[:len(attempts)] == attempts
    assert up.tile_size == 0  # the shared upsampler keeps its configured tile for the next photo


def test_oom_below_the_tile_floor_is_a_clear_error(restorer, tiny_weights):
    net = tiny_net(OomAboveSize)
    net.limit = 50
    up = make_upsampler(tiny_weights, net, tile=0)
    with pytest.raises(EnhanceError) as info:
        enhance(flat(160, 160), restorer, up, EnhanceOptions(quality="medium", upscale=4), tile_floor=64)
    assert info.value.code == "gpu_out_of_memory"
    assert "64px tiles" in info.value.message
    assert up.tile_size == 0
    assert restorer.face_helper.restored_faces == []


def test_option_tile_is_the_starting_tile(restorer, tiny_weights):
    net = tiny_net(OomAboveSize)
    up = make_upsampler(tiny_weights, net, tile=0)
    img = flat(300, 300)
    result = enhance(img, restorer, up, EnhanceOptions(quality="medium", tile=256, upscale=2))
    assert result.tile_used == 256
    assert max(net.seen) == 256 + 10  # a border tile plus its inner padding, never the whole image


def test_tiled_upsampling_matches_stock_realesrgan_and_whole_image(tiny_weights):
    img = np.random.default_rng(0).integers(0, 255, (70, 90, 3), dtype=np.uint8)
    whole = make_upsampler(tiny_weights, tiny_net(), tile=0).enhance(img)[0]
    ours = make_upsampler(tiny_weights, tiny_net(), tile=32).enhance(img)[0]
    stock = make_upsampler(tiny_weights, tiny_net(), tile=32, cls=RealESRGANer).enhance(img)[0]
    assert np.array_equal(ours, stock)
    # tile_pad (10) exceeds the tiny net's receptive radius (3): tiling is seamless.
    assert np.abs(ours.astype(int) - whole.astype(int)).max() <= 1


def test_tiled_upsampler_lets_oom_through(tiny_weights):
    # The stock RealESRGANer swallows it and reuses a stale tile; ours must not.
    net = tiny_net(OomAboveSize)
    net.limit = 30
    up = make_upsampler(tiny_weights, net, tile=64)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        up.enhance(flat(100, 100))


def test_lanczos_background_matches_cv2(restorer):
    img = np.random.default_rng(3).integers(0, 255, (33, 17, 3), dtype=np.uint8)
    result = enhance(img, restorer, None, EnhanceOptions(quality="fast", upscale=3))
    assert np.array_equal(result.image, cv2.resize(img, (51, 99), interpolation=cv2.INTER_LANCZOS4))
