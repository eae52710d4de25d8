"""Plates are found with the Haar cascade OpenCV ships, on synthetic Russian plates."""

from __future__ import annotations

import numpy as np
import pytest

from services.camera import plates
from services.camera.plates import CascadeUnavailable, crop, find_plates, load_cascade
from testbed.plates import PLATE_MM, car_background, plate_image, scene_with_plate


def covers(found, plate) -> bool:
    """A detection box contains the plate's centre and is about its size (the cascade's
    boxes are ~1.2x wider and ~1.8x taller than the plate)."""
    x, y, w, h = found
    px, py, pw, ph = plate
    cx, cy = px + pw / 2, py + ph / 2
    return x <= cx <= x + w and y <= cy <= y + h and 0.7 * pw <= w <= 1.6 * pw


def test_plate_image_proportions():
    p = plate_image(260)
    assert p.shape == (56, 260, 3)
    assert abs(p.shape[1] / p.shape[0] - PLATE_MM[0] / PLATE_MM[1]) < 0.05


@pytest.mark.parametrize(
    "width,at",
    [
        (120, (30, 330)),
        (120, (480, 40)),
        (160, None),
        (160, (470, 420)),
        (240, (10, 200)),
        (240, (390, 5)),
        (320, (150, 300)),
        (160, (0, 0)),
        (160, (480, 446)),  # touching the edges
    ],
)
def test_plate_is_found_first(width, at):
    img, box = scene_with_plate(480, 640, width, at, seed=width)
    found = find_plates(img)
    assert found, "no plate found"
    assert covers(found[0], box), (found, box)


@pytest.mark.parametrize("seed", range(3))
def test_nothing_on_texture_without_plates(seed):
    rng = np.random.default_rng(seed)
    plain = np.clip(110 + rng.normal(0, 30, (480, 640, 1)), 0, 255).astype(np.uint8).repeat(3, 2)
    assert find_plates(plain) == []
    assert find_plates(car_background(480, 640, seed)) == []


def test_roi_limits_the_search_and_boxes_stay_in_frame_coordinates():
    img, box = scene_with_plate(480, 640, 160, (420, 330), seed=3)
    assert find_plates(img, roi=(0, 0, 320, 480)) == []
    vehicle = (350, 250, 320, 300)  # sticks out of the frame on the right: clipped
    found = find_plates(img, roi=vehicle)
    assert found and covers(found[0], box)
    assert find_plates(img, roi=(700, 0, 50, 50)) == []
    # The plate box itself as ROI (what an ANPR event reports) still finds it.
    tight = find_plates(img, roi=box)
    assert tight and covers(tight[0], box)


def test_max_plates_keeps_the_most_confident():
    img = car_background(480, 640, 5)
    spots = [(20, 300), (240, 360), (440, 300)]
    for (x, y), n in zip(spots, ("A123BC", "K456MO", "T789XY")):
        p = plate_image(170, n)
        img[y : y + p.shape[0], x : x + p.shape[1]] = p
    assert len(find_plates(img)) == 3
    assert len(find_plates(img, max_plates=2)) == 2
    assert find_plates(img, max_plates=0) == []


def test_crop_pads_clips_and_copies():
    img = np.arange(100 * 200 * 3, dtype=np.uint32).reshape(100, 200, 3).astype(np.uint8)
    c = crop(img, (50, 40, 100, 20), pad=0.1)
    assert c.shape == (24, 120, 3)
    np.testing.assert_array_equal(c, img[38:62, 40:160])
    corner = crop(img, (180, 90, 40, 30), pad=0.25)  # runs off the bottom-right corner
    assert corner.shape == (100 - 82, 200 - 170, 3)  # from floor(90 - 7.5)
    assert not np.shares_memory(c, img)
    with pytest.raises(ValueError, match="outside"):
        crop(img, (300, 10, 20, 20))


def test_missing_cascade_fails_clearly(tmp_path, monkeypatch):
    with pytest.raises(CascadeUnavailable, match="not found"):
        load_cascade(tmp_path / "nope.xml")
    bad = tmp_path / "bad.xml"
    bad.write_text("<opencv_storage></opencv_storage>")
    with pytest.raises(CascadeUnavailable, match="could not be loaded"):
        load_cascade(bad)
    # Through the registry (a fresh one: this process may have loaded the real file),
    # a missing file is a failed model whose message names the path.
    from services.runtime.registry import ModelRegistry, ModelUnavailable

    fresh = ModelRegistry()
    monkeypatch.setattr(plates, "registry", fresh)
    monkeypatch.setattr(plates, "default_cascade_path", lambda: tmp_path / "gone.xml")
    with pytest.raises(ModelUnavailable, match="gone.xml"):
        find_plates(np.zeros((100, 300, 3), np.uint8))
    assert fresh.states()[plates.REGISTRY_NAME]["state"] == "failed"
