"""Finding 2: ``?format=`` decoded a stored image whole whatever its pixel count: a
~100 KB flat 40 MP PNG, then ``/jobs/{id}/input?format=bmp``, took the gateway past its
memory limit. Now a conversion is bounded by pixels (scaled by the target's cost) and
runs one at a time per process; damaged pixels are a 422, not a 500."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (120, 130, 140)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _upload(client, auth, data: bytes, name: str) -> str:
    r = client.post("/api/v1/enhance", headers=auth, data={"file": (io.BytesIO(data), name), "upscale": "1"})
    assert r.status_code == 202, r.json
    return r.json["id"]


def test_a_tiny_file_of_40_megapixels_is_not_decoded_in_the_gateway(gateway):
    client, auth, s = gateway()
    bomb = _png(8000, 5000)
    assert len(bomb) < 200_000
    jid = _upload(client, auth, bomb, "flat.png")
    r = client.get(f"/api/v1/jobs/{jid}/input?format=bmp", headers=auth)
    assert r.status_code == 413 and r.json["error"]["code"] == "too_large_to_convert", r.json
    assert "KADR_MAX_CONVERT_PIXELS" in r.json["error"]["message"]
    # As stored it is always there.
    r = client.get(f"/api/v1/jobs/{jid}/input", headers=auth)
    assert r.status_code == 200 and r.data == bomb


def test_within_the_limit_a_conversion_works_and_webp_gets_less(gateway):
    client, auth, s = gateway(max_convert_pixels=2_000_000)
    jid = _upload(client, auth, _png(1600, 1200), "ok.png")  # 1.92 MP
    r = client.get(f"/api/v1/jobs/{jid}/input?format=jpeg", headers=auth)
    assert r.status_code == 200 and r.data[:2] == b"\xff\xd8"
    r = client.get(f"/api/v1/jobs/{jid}/input?format=webp", headers=auth)  # costs 3.4x per pixel
    assert r.status_code == 413 and r.json["error"]["code"] == "too_large_to_convert"


def test_a_stored_image_with_damaged_pixels_is_422_not_500(gateway):
    client, auth, _ = gateway()
    arr = np.random.default_rng(3).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    data = bytearray(buf.getvalue())
    sos = data.index(b"\xff\xda")
    for i in range(sos + 40, len(data) - 10, 7):  # garbage in the scan, the structure intact
        data[i] = 0xFF if data[i - 1] != 0xFF else 0x00
    jid = _upload(client, auth, bytes(data), "damaged.jpg")
    r = client.get(f"/api/v1/jobs/{jid}/input?format=png", headers=auth)
    assert r.status_code == 422 and r.json["error"]["code"] == "unreadable_image", (r.status_code, r.json)
