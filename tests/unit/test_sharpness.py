"""The sharpest of the frames before an event is the one picked; the event's box decides."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from services.camera.sharpness import clip_box, laplacian_variance, pick_sharpest


def textured(h: int = 120, w: int = 160, seed: int = 0) -> np.ndarray:
    """Edges at many scales, like a street scene: blocks of random grey plus fine noise."""
    rng = np.random.default_rng(seed)
    blocks = np.kron(rng.integers(0, 256, (h // 8, w // 8)), np.ones((8, 8)))
    img = np.clip(blocks + rng.normal(0, 20, (h, w)), 0, 255).astype(np.uint8)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return img.copy() if sigma == 0 else cv2.GaussianBlur(img, (0, 0), sigma)


@pytest.mark.parametrize("order", [[0, 1, 2, 4], [4, 2, 0, 1], [2, 4, 1, 0]])
def test_least_blurred_frame_is_picked(order):
    base = textured()
    candidates = [(float(i), blur(base, s)) for i, s in enumerate(order)]
    best, scores = pick_sharpest(candidates)
    assert order[best] == 0
    by_sigma = [scores[order.index(s)] for s in (0, 1, 2, 4)]
    assert by_sigma == sorted(by_sigma, reverse=True)


def test_roi_decides_when_given():
    base = textured(seed=1)
    roi = (40, 30, 48, 40)
    x, y, w, h = roi
    # A: only the vehicle box is sharp. B: the box is blurred, the rest (much larger) sharp.
    a = blur(base, 3)
    a[y : y + h, x : x + w] = base[y : y + h, x : x + w]
    b = base.copy()
    b[y : y + h, x : x + w] = blur(base, 3)[y : y + h, x : x + w]
    assert pick_sharpest([(0.0, a), (1.0, b)])[0] == 1
    assert pick_sharpest([(0.0, a), (1.0, b)], roi=roi)[0] == 0


def test_roi_is_clipped_to_the_frame():
    img = textured()
    assert laplacian_variance(img, (100, 80, 500, 500)) == laplacian_variance(img[80:, 100:])
    assert laplacian_variance(img, (-20, -10, 60, 40)) == laplacian_variance(img[:30, :40])
    with pytest.raises(ValueError, match="outside"):
        laplacian_variance(img, (500, 10, 30, 30))
    assert clip_box((-5, -5, 10, 10), (120, 160)) == (0, 0, 5, 5)
    assert clip_box((160, 0, 10, 10), (120, 160)) is None


def test_flat_frame_scores_zero_and_grey_input_works():
    assert laplacian_variance(np.full((40, 40, 3), 128, np.uint8)) == 0.0
    grey = cv2.cvtColor(textured(), cv2.COLOR_BGR2GRAY)
    assert laplacian_variance(grey) == pytest.approx(laplacian_variance(textured()))


def test_ties_go_to_the_first_and_empty_is_an_error():
    img = textured()
    assert pick_sharpest([(0.0, img), (1.0, img.copy())])[0] == 0
    with pytest.raises(ValueError):
        pick_sharpest([])
