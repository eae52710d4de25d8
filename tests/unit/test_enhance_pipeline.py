"""services.enhance.pipeline with tiny stand-in networks: real facexlib/realesrgan code, no weights.

The face helper is a real FaceRestoreHelper whose detector is a stub and whose parser is
a real (narrow) ParseNet, so face selection, alignment and the banded paste-back run the
production code on synthetic detections; the upsampler is a real (kadr) RealESRGANer
around a tiny network.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.enhance import models, paste, tiling
from services.enhance.pipeline import Costs, EnhanceError, EnhanceOptions, Limits, enhance, run

# isort: split
import facexlib.utils.face_restoration_helper as frh  # after models: needs the basicsr shim
from facexlib.parsing.parsenet import ParseNet
from realesrgan import RealESRGANer
from realesrgan.archs.srvgg_arch import SRVGGNetCompact

CPU = torch.device("cpu")
FFHQ_TEMPLATE = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ]
)
ROOMY = Limits(budget_bytes=512 * 2**20)


# --------------------------------------------------------------------------- stand-ins


class StubDetector:
    """RetinaFace stand-in: ``rows`` ([x1, y1, x2, y2, score, 5 landmarks]) are in the
    coordinates of a photo of ``size`` (w, h); like a real detector it answers in the
    coordinates of the image it is given, which may be a smaller copy."""

    def __init__(self):
        self.rows = np.zeros((0, 15), dtype=np.float32)
        self.size = None
        self.seen = []

    def detect_faces(self, image, conf_threshold=0.8):
        self.seen.append(image.shape[:2])
        rows = self.rows.astype(np.float64).copy()
        if self.size is not None:
            sx, sy = image.shape[1] / self.size[0], image.shape[0] / self.size[1]
            rows[:, [0, 2, 5, 7, 9, 11, 13]] *= sx
            rows[:, [1, 3, 6, 8, 10, 12, 14]] *= sy
        return rows.astype(np.float32)


def face_row(x: float, y: float, size: float) -> np.ndarray:
    """A plausible detection: square box with FFHQ-placed landmarks."""
    landmarks = FFHQ_TEMPLATE / 512.0 * size + [x, y]
    return np.concatenate([[x, y, x + size, y + size, 0.99], landmarks.ravel()]).astype(np.float32)


class StubGFPGAN(torch.nn.Module):
    """Inverting 'restoration' (so pasted faces show) that can be told to fail on given calls (0-based)."""

    def __init__(self, fail_calls=()):
        super().__init__()
        self.calls = 0
        self.fail_calls = set(fail_calls)

    def forward(self, x, return_rgb=False, weight=0.5):
        call, self.calls = self.calls, self.calls + 1
        if call in self.fail_calls:
            raise RuntimeError("simulated restoration failure")
        return (-x,)


def tiny_parsenet():
    """ParseNet's real layout (5 encoder stages, body, 4 decoder stages at 512 px), narrow."""
    torch.manual_seed(3)
    return ParseNet(in_size=512, out_size=512, parsing_ch=19, base_ch=8, ch_range=[8, 16], res_depth=1).eval()


@pytest.fixture(scope="module")
def parsenet():
    return tiny_parsenet()


@pytest.fixture
def restorer(monkeypatch, parsenet):
    detector = StubDetector()
    monkeypatch.setattr(frh, "init_detection_model", lambda *a, **k: detector)
    monkeypatch.setattr(frh, "init_parsing_model", lambda *a, **k: parsenet)
    helper = frh.FaceRestoreHelper(
        2,
        face_size=512,
        crop_ratio=(1, 1),
        det_model="retinaface_resnet50",
        save_ext="png",
        use_parse=True,
        device=CPU,
        model_rootpath="/nonexistent",
    )
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


def make_upsampler(path, net=None, tile=0, cls=models.Upsampler):
    net = net if net is not None else tiny_net(OomAboveSize)  # records the tile sizes it sees
    return cls(scale=4, model_path=str(path), model=net, tile=tile, tile_pad=10, pre_pad=0, device=CPU)


def network(up, device=CPU, bytes_per_pixel=1024.0):
    net = tiling.Network.of(up, bytes_per_pixel)
    return tiling.Network(net.module, net.scale, device, net.half, net.mod, net.bytes_per_pixel)


def assert_same_pixels(ours: np.ndarray, stock: np.ndarray) -> None:
    """Equal up to the last bit of float rounding: on some CPUs (seen on an AMD EPYC, never on
    the Xeons) oneDNN sums the same convolution in another order from one call to the next,
    and a handful of values land on the other side of a uint8 rounding step (21 of 7.7
    million off by 1). A wrong tile, offset or padding moves thousands by far more."""
    assert ours.shape == stock.shape
    diff = np.abs(ours.astype(np.int16) - stock.astype(np.int16))
    assert diff.max() <= 1 and np.count_nonzero(diff) <= max(4, diff.size // 10_000), (
        f"max difference {diff.max()}, {np.count_nonzero(diff)} of {diff.size} values differ"
    )


def flat(h, w, value=128):
    return np.full((h, w, 3), value, dtype=np.uint8)


def noise(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


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
    assert (result.width, result.height) == (w * upscale, h * upscale)
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
    restorer.detector.rows = np.stack([face_row(10, 10, 40)])
    result = enhance(flat(48, 64), restorer, None, EnhanceOptions(quality="fast", max_faces=0, upscale=1))
    assert restorer.detector.seen == [] and result.faces_found == 0 and result.image.shape == (48, 64, 3)


def test_only_center_face_restores_the_face_nearest_the_centre(restorer):
    restorer.detector.rows = np.stack([face_row(0, 0, 100), face_row(100, 100, 50), face_row(190, 190, 60)])
    seen = []
    helper = restorer.face_helper
    original_align = helper.align_warp_face
    helper.align_warp_face = lambda *a, **k: (
        seen.extend(list(b[:2]) for b in helper.det_faces),
        original_align(*a, **k),
    )
    result = enhance(flat(256, 256), restorer, None, EnhanceOptions(quality="fast", only_center_face=True, max_faces=5))
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
        return (None, None) if src[0, 0] == np.float32(degenerate[5]) else real_fit(src, dst, **kw)

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
    assert np.all(result.image == 215)  # the inverting stub, on the resized face
    assert restorer.detector.seen == []


def test_medium_quality_needs_an_upsampler(restorer):
    with pytest.raises(EnhanceError) as info:
        enhance(flat(16, 16), restorer, None, EnhanceOptions(quality="medium"))
    assert info.value.code == "upsampler_unavailable"


def test_helper_state_is_cleared_when_the_background_step_fails(restorer, tiny_weights):
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise ValueError("boom")

    restorer.detector.rows = np.stack([face_row(10, 10, 60)])
    net = tiling.Network(Broken(), 4, CPU)
    with pytest.raises(ValueError):
        enhance(flat(128, 128), restorer, net, EnhanceOptions(quality="high"), limits=ROOMY)
    helper = restorer.face_helper
    assert helper.det_faces == [] and helper.cropped_faces == [] and helper.restored_faces == []


def test_faces_are_found_on_a_copy_within_the_budget_and_mapped_back(restorer):
    """The detector sees a copy no larger than the budget allows; the boxes land on the
    faces in the full photo (the stub answers in the copy's coordinates, as RetinaFace does)."""
    h, w = 1200, 1600
    img = noise(h, w)
    restorer.detector.rows = np.stack([face_row(400, 300, 300), face_row(1000, 500, 240)])
    restorer.detector.size = (w, h)
    limits = Limits(
        budget_bytes=img.nbytes + 56 * 2**20,
        detect_max_pixels=200_000,
        detect_bytes_per_pixel=100.0,
        reserve_bytes=48 * 2**20,
    )
    boxes = []
    original_align = restorer.face_helper.align_warp_face
    restorer.face_helper.align_warp_face = lambda *a, **k: (
        boxes.extend(np.asarray(b[:4]) for b in restorer.face_helper.det_faces),
        original_align(*a, **k),
    )
    result = enhance(img, restorer, None, EnhanceOptions(quality="fast", upscale=1), limits=limits)
    ((sh, sw),) = restorer.detector.seen
    assert sh * sw <= 200_000 and result.detect_scale < 0.4
    assert sw / sh == pytest.approx(w / h, rel=0.01)
    expected = [np.array([400, 300, 700, 600]), np.array([1000, 500, 1240, 740])]
    assert len(boxes) == 2
    for got, want in zip(boxes, expected):
        assert np.abs(got - want).max() < 2.0  # the copy's rounding, in the photo's pixels
    assert result.faces_restored == 2


# --------------------------------------------------------------------------- background in bands


@pytest.mark.parametrize("upscale", [1, 2, 3, 4])
def test_tiled_bands_match_stock_realesrgan_with_the_same_tiles(tiny_weights, upscale):
    img = noise(70, 90)
    stock = make_upsampler(tiny_weights, tiny_net(), tile=32, cls=RealESRGANer).enhance(img, outscale=upscale)[0]
    up = make_upsampler(tiny_weights)
    bands = list(tiling.sr_bands(img, network(up), upscale=upscale, tile=32, pad=10))
    ours = np.concatenate([b.pixels for b in bands])
    assert [b.y for b in bands] == [y * upscale for y in range(0, 70, 32)]
    assert ours.shape == stock.shape
    if upscale in (1, 2, 4):  # scale ratios OpenCV resizes exactly tile by tile
        assert np.array_equal(ours, stock)
    else:
        assert np.abs(ours.astype(int) - stock).max() <= 1 and (ours != stock).mean() < 0.01


def test_tiled_bands_are_seamless_against_the_whole_image(tiny_weights):
    img = noise(70, 90, seed=4)
    whole = make_upsampler(tiny_weights, tiny_net(), tile=0).enhance(img)[0]
    ours = np.concatenate(
        [b.pixels for b in tiling.sr_bands(img, network(make_upsampler(tiny_weights)), upscale=4, tile=32, pad=10)]
    )
    # tile_pad (10) exceeds the tiny net's receptive radius (3): tiling is seamless.
    assert np.abs(ours.astype(int) - whole.astype(int)).max() <= 1


@settings(max_examples=20, deadline=None)
@given(h=st.integers(1, 60), w=st.integers(1, 40), upscale=st.integers(1, 4), rows=st.integers(1, 25))
def test_lanczos_bands_equal_one_whole_resize(h, w, upscale, rows):
    img = noise(h, w, seed=h * 100 + w)
    ours = np.concatenate([b.pixels for b in tiling.resize_bands(img, upscale=upscale, rows=rows)])
    assert np.array_equal(ours, cv2.resize(img, (w * upscale, h * upscale), interpolation=cv2.INTER_LANCZOS4))


@settings(max_examples=50, deadline=None)
@given(
    budget=st.integers(1, 2**31),
    width=st.integers(1, 20_000),
    upscale=st.integers(1, 4),
    bpp=st.sampled_from([600.0, 1200.0, 3600.0]),
)
def test_the_chosen_tile_is_the_largest_that_fits_the_budget(budget, width, upscale, bpp):
    net = tiling.Network(torch.nn.Identity(), 4, CPU, bytes_per_pixel=bpp)
    tile = tiling.choose_tile(budget, pad=10, net=net, out_width=width * upscale, upscale=upscale, largest=512)
    if tile is None:
        assert tiling.tile_cost(32, 10, net, width * upscale, upscale) > budget
    else:
        assert tile % 8 == 0 and 32 <= tile <= 512
        assert tiling.tile_cost(tile, 10, net, width * upscale, upscale) <= budget
        assert tile == 512 or tiling.tile_cost(tile + 8, 10, net, width * upscale, upscale) > budget


def test_medium_quality_tiles_from_the_budget(restorer, tiny_weights):
    up = make_upsampler(tiny_weights)
    img = noise(300, 300)
    bands = []
    result = run(
        img,
        restorer,
        network(up, bytes_per_pixel=4000.0),
        EnhanceOptions(quality="medium", upscale=2, max_faces=0),
        limits=Limits(budget_bytes=img.nbytes + 48 * 2**20 + 40 * 2**20, max_tile=512),
        costs=Costs(),
        sink=bands.append,
        tick=lambda f: None,
    )
    assert result.tile_used is not None and result.tile_used < 300
    assert max(up.model.seen) <= result.tile_used + 20  # a tile plus its padding, never the photo
    assert sum(b.pixels.shape[0] for b in bands) == 600


def test_a_photo_that_does_not_fit_the_budget_is_a_clear_error(restorer, tiny_weights):
    up = make_upsampler(tiny_weights)
    with pytest.raises(EnhanceError) as info:
        enhance(
            flat(64, 64),
            restorer,
            network(up),
            EnhanceOptions(quality="medium", max_faces=0),
            limits=Limits(budget_bytes=50 * 2**20),
        )  # less than the reserve alone
    assert info.value.code == "over_budget" and "budget" in info.value.message


# --------------------------------------------------------------------------- GPU out-of-memory policy


def test_cuda_oom_halves_the_tile_for_that_band_and_the_rest(restorer, tiny_weights):
    net = tiny_net(OomAboveSize)
    net.limit = 150
    make_upsampler(tiny_weights, net)  # loads the tiny weights into net
    img = noise(400, 400, seed=1)
    bands = list(tiling.sr_bands(img, tiling.Network(net, 4, CPU), upscale=4, tile=256, pad=10, tile_floor=64))
    assert [b.tile for b in bands] == [128, 128, 128, 128]  # 256+pad failed once; every band then used 128
    assert net.seen[0] == 266 and max(net.seen[1:]) <= 148
    ours = np.concatenate([b.pixels for b in bands])
    stock = make_upsampler(tiny_weights, tiny_net(), tile=128, cls=RealESRGANer).enhance(img)[0]
    assert_same_pixels(ours, stock)


def test_cuda_oom_below_the_tile_floor_is_a_clear_error(restorer, tiny_weights):
    net = tiny_net(OomAboveSize)
    net.limit = 50
    # With a device budget the pipeline runs as on CUDA: out-of-memory halves the tile.
    with pytest.raises(EnhanceError) as info:
        enhance(
            flat(160, 160),
            restorer,
            tiling.Network(net, 4, CPU, bytes_per_pixel=10.0),
            EnhanceOptions(quality="medium", upscale=4, max_faces=0),
            limits=Limits(budget_bytes=2**30, tile_floor=64, device_budget_bytes=2**30, max_tile=128),
        )
    assert info.value.code == "gpu_out_of_memory"
    assert "64px tiles" in info.value.message
    assert restorer.face_helper.restored_faces == []


def test_on_cpu_an_out_of_memory_error_is_not_retried(tiny_weights):
    net = tiny_net(OomAboveSize)
    net.limit = 30
    with pytest.raises(tiling.TileOutOfMemory):
        list(tiling.sr_bands(flat(100, 100), tiling.Network(net, 4, CPU), upscale=4, tile=64, pad=10))


def test_option_tile_caps_the_tile(restorer, tiny_weights):
    up = make_upsampler(tiny_weights)
    result = enhance(
        flat(600, 600),
        restorer,
        network(up, bytes_per_pixel=1.0),
        EnhanceOptions(quality="medium", tile=256, upscale=2, max_faces=0),
        limits=Limits(budget_bytes=2**30, max_tile=512),
    )
    assert result.tile_used == 256
    assert max(up.model.seen) == 256 + 20


# --------------------------------------------------------------------------- paste-back in bands


@pytest.mark.parametrize("threads,chunk_bytes", [(1, paste.CHUNK_BYTES), (2, 9000)])
def test_banded_paste_equals_facexlibs_whole_image_paste(restorer, monkeypatch, threads, chunk_bytes):
    """Faces pasted band by band (bands cutting through them), in chunks of rows on
    threads, give facexlib's result."""
    monkeypatch.setattr(paste, "CHUNK_BYTES", chunk_bytes)
    img = noise(256, 300, seed=2)
    upscale = 2
    restorer.detector.rows = np.stack([face_row(20, 30, 120), face_row(140, 90, 100), face_row(100, 60, 90)])
    helper = restorer.face_helper
    helper.clean_all()
    helper.set_upscale_factor(upscale)
    helper.read_image(img)
    helper.get_face_landmarks_5(eye_dist_threshold=5)
    helper.align_warp_face()
    faces = [np.ascontiguousarray(255 - c) for c in helper.cropped_faces]
    for f in faces:
        helper.add_restored_face(f)
    affines = [a.copy() for a in helper.affine_matrices]
    background = cv2.resize(img, (600, 512), interpolation=cv2.INTER_LANCZOS4)
    helper.get_inverse_affine(None)
    reference = helper.paste_faces_to_input_image(upsample_img=background.copy())
    prepared = [paste.prepare_face(f, a, upscale, (600, 512), helper.face_parse, CPU) for f, a in zip(faces, affines)]
    ours = background.copy()
    for y in range(0, 512, 70):
        paste.paste_band(ours[y : y + 70], y, prepared, threads=threads)
    assert (reference != background).any()  # the faces did land
    assert all(f.mask is None for f in prepared)  # each mask let go after the face's last band
    assert np.array_equal(ours, reference)
    helper.clean_all()


@settings(max_examples=30, deadline=None)
@given(
    y0=st.integers(0, 511),
    x0=st.integers(0, 511),
    h=st.integers(1, 200),
    w=st.integers(1, 200),
    label=st.sampled_from([1, 5, 10, 13, 14, 15]),
)
def test_the_soft_mask_is_zero_outside_its_support_box(y0, x0, h, w, label):
    labels = np.zeros((512, 512), np.uint8)
    labels[y0 : y0 + h, x0 : x0 + w] = label
    mask = paste.PreparedFace(None, labels, None, (0, 0, 0, 0)).soft_mask()
    sx0, sy0, sx1, sy1 = paste.mask_support(labels)
    outside = np.ones_like(mask, bool)
    outside[sy0:sy1, sx0:sx1] = False
    assert not mask[outside].any()
    if label != 14:  # 14 (the neck) is not a face part: nothing to paste
        assert mask.any() and sx1 > sx0 and sy1 > sy0


def test_lean_parsenet_gives_the_stock_classes(parsenet):
    from services.enhance import parsenet_forward

    x = torch.rand(1, 3, 512, 512) * 2 - 1
    with torch.inference_mode():
        stock = parsenet(x)[0].argmax(dim=1).squeeze(0).to(torch.uint8).numpy()
    assert np.array_equal(parsenet_forward.labels(parsenet, x), stock)


# --------------------------------------------------------------------------- progress and stopping


def test_progress_rises_per_face_and_tile_and_ends_at_one(restorer, tiny_weights):
    restorer.detector.rows = np.stack([face_row(10, 10, 80), face_row(150, 150, 60)])
    up = make_upsampler(tiny_weights)
    ticks = []
    enhance(
        noise(200, 260),
        restorer,
        network(up),
        EnhanceOptions(quality="medium", upscale=2, tile=256),
        limits=Limits(budget_bytes=2**30, max_tile=64),
        tick=ticks.append,
    )
    assert len(ticks) == 2 + 4 * 5  # two faces, then 4x5 tiles of 64
    assert ticks == sorted(ticks) and ticks[-1] == 1.0 and ticks[0] > 0


def test_a_tick_that_raises_stops_the_work_at_once(restorer, tiny_weights):
    class Stop(Exception):
        pass

    up = make_upsampler(tiny_weights)
    restorer.detector.rows = np.stack([face_row(10, 10, 80)])
    bands, ticks = [], []

    def tick(f):
        ticks.append(f)
        if len(ticks) == 3:  # the face, then two tiles
            raise Stop

    with pytest.raises(Stop):
        run(
            noise(200, 260),
            restorer,
            network(up),
            EnhanceOptions(quality="medium", upscale=2),
            limits=Limits(budget_bytes=2**30, max_tile=64),
            costs=Costs(),
            sink=bands.append,
            tick=tick,
        )
    assert len(up.model.seen) == 2 and bands == []  # no third tile, no band handed on
    assert restorer.face_helper.det_faces == [] and restorer.face_helper.cropped_faces == []


@settings(max_examples=40, deadline=None)
@given(
    angle=st.floats(-0.6, 0.6),
    scale=st.floats(0.05, 10),
    tx=st.floats(-800, 3000),
    ty=st.floats(-800, 3000),
    x0=st.integers(0, 2500),
    y0=st.integers(0, 2500),
    w=st.integers(1, 600),
    h=st.integers(1, 300),
)
def test_a_warped_window_is_that_window_of_the_whole_warp(angle, scale, tx, ty, x0, y0, w, h):
    src = noise(64, 80, seed=5)
    srcf = np.random.default_rng(6).random((64, 80))
    m = np.array(
        [[scale * np.cos(angle), -scale * np.sin(angle), tx], [scale * np.sin(angle), scale * np.cos(angle), ty]]
    )
    canvas = (x0 + w, y0 + h)
    assert np.array_equal(paste.warp_window(src, m, x0, y0, w, h), cv2.warpAffine(src, m, canvas)[y0:, x0:])
    assert np.array_equal(paste.warp_window(srcf, m, x0, y0, w, h), cv2.warpAffine(srcf, m, canvas, flags=3)[y0:, x0:])


def test_the_photo_is_let_go_while_faces_are_restored_and_read_again(restorer):
    """Given a callable source, the pipeline drops the photo during the face phase (GFPGAN's
    working memory is the largest single cost) and asks for it again for the background."""
    img = noise(200, 260, seed=8)
    restorer.detector.rows = np.stack([face_row(10, 10, 80), face_row(150, 120, 60)])
    calls, during = [], []
    real_restore = restorer.gfpgan.forward

    def spy(x, **kw):
        during.append(restorer.face_helper.input_img is None)
        return real_restore(x, **kw)

    restorer.gfpgan.forward = spy

    def source():
        calls.append(1)
        return img.copy()

    released = []
    bands = []
    run(
        source,
        restorer,
        None,
        EnhanceOptions(quality="fast", upscale=2),
        limits=ROOMY,
        costs=Costs(),
        sink=bands.append,
        tick=lambda f: None,
        release=released.append,
    )
    assert len(calls) == 2 and during == [True, True]
    assert released == ["detect", "faces"]  # as each phase ends
    with_array = enhance(img, restorer, None, EnhanceOptions(quality="fast", upscale=2), limits=ROOMY)
    assert np.array_equal(np.concatenate([b.pixels for b in bands]), with_array.image)
    # Without faces to restore the photo is read once.
    calls.clear()
    restorer.detector.rows = np.zeros((0, 15), np.float32)
    run(
        source,
        restorer,
        None,
        EnhanceOptions(quality="fast", upscale=2),
        limits=ROOMY,
        costs=Costs(),
        sink=lambda b: None,
        tick=lambda f: None,
    )
    assert calls == [1]


def test_a_photo_that_reads_back_differently_is_refused(restorer):
    restorer.detector.rows = np.stack([face_row(10, 10, 80)])
    shapes = iter([(100, 120), (120, 100)])
    with pytest.raises(EnhanceError) as info:
        enhance(lambda: noise(*next(shapes)), restorer, None, EnhanceOptions(quality="fast"), limits=ROOMY)
    assert info.value.code == "invalid_image"


@pytest.mark.parametrize(("h", "w", "upscale"), [(100, 130, 2), (101, 131, 2), (99, 70, 1), (37, 53, 3)])
def test_prescale_runs_the_network_on_the_shrunk_photo_at_its_own_scale(restorer, tiny_weights, h, w, upscale):
    img = noise(h, w, seed=h + w)
    up = make_upsampler(tiny_weights)
    result = enhance(
        img,
        restorer,
        network(up),
        EnhanceOptions(quality="medium", upscale=upscale, prescale=True, max_faces=0),
        limits=ROOMY,
    )
    assert result.image.shape == (h * upscale, w * upscale, 3)
    # By hand: extend by reflection to sides the shrink divides, shrink, x4, cut.
    pw = next(k for k in range(4) if (w + k) * upscale % 4 == 0)
    ph = next(k for k in range(4) if (h + k) * upscale % 4 == 0)
    padded = cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_REFLECT_101)
    small = cv2.resize(padded, ((w + pw) * upscale // 4, (h + ph) * upscale // 4), interpolation=cv2.INTER_AREA)
    by_hand = make_upsampler(tiny_weights, tile=256, cls=RealESRGANer).enhance(small)[0][: h * upscale, : w * upscale]
    assert_same_pixels(result.image, by_hand)
    assert max(up.model.seen) <= (max(h, w) * upscale) // 4 + 2 + 20  # the network never saw the full photo


def test_prescale_leaves_the_fast_path_and_native_scales_alone(restorer, tiny_weights):
    img = noise(40, 60)
    plain = enhance(img, restorer, None, EnhanceOptions(quality="fast", upscale=2, max_faces=0))
    pre = enhance(img, restorer, None, EnhanceOptions(quality="fast", upscale=2, max_faces=0, prescale=True))
    assert np.array_equal(plain.image, pre.image)
    up = make_upsampler(tiny_weights)
    a = enhance(img, restorer, network(up), EnhanceOptions(quality="medium", upscale=4, max_faces=0), limits=ROOMY)
    b = enhance(
        img,
        restorer,
        network(up),
        EnhanceOptions(quality="medium", upscale=4, max_faces=0, prescale=True),
        limits=ROOMY,
    )
    assert np.array_equal(a.image, b.image)  # the network's own scale: nothing to shrink
