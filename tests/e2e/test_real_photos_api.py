"""Real photos over HTTP: HEIC and AVIF uploads, metadata kept, the output-size limit and
the automatic upscale, the estimate, progress as Server-Sent Events, cancel."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from testbed import photos
from testbed.photos import flat_png
from tests.e2e.conftest import sse_events, wait_job

pytestmark = pytest.mark.slow

FAST = {"quality": "fast", "max_faces": "0"}


def _error(resp, status, code):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"]["code"] == code, body
    return body["error"]


def _post(api, name, data, **form):
    return api.post(f"{api.base}/api/v1/enhance", files={"file": (name, data)}, data=form)


def _flat_png(w, h):
    out = io.BytesIO()
    Image.new("RGB", (w, h), (90, 120, 150)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["heic", "avif"])
def test_heic_and_avif_photos_are_enhanced_into_jpeg_with_their_date(api, fmt):
    data = photos.encode(photos.photo(320, 240), fmt, orientation=6)
    resp = _post(api, f"IMG_0001.{fmt}", data, upscale="2", **FAST)
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["input"]["format"] == fmt and (job["input"]["width"], job["input"]["height"]) == (240, 320)
    done = wait_job(api, job["id"])
    assert done["state"] == "succeeded", done["error"]
    assert done["result"]["format"] == "jpeg"
    img = api.get(f"{api.base}{done['links']['result']}")
    assert img.headers["Content-Type"] == "image/jpeg"
    im = Image.open(io.BytesIO(img.content))
    assert im.size == (480, 640)  # upright (the camera was turned), then x2
    assert im.getexif().get(0x0112, 1) == 1 and im.getexif().get_ifd(0x8769).get(0x9003) == photos.DATE_TAKEN
    # The original stays downloadable as sent, and converts for browsers that cannot show it.
    assert api.get(f"{api.base}{done['links']['input']}").content == data
    png = api.get(f"{api.base}{done['links']['input']}", params={"format": "png"})
    assert png.headers["Content-Type"] == "image/png" and Image.open(io.BytesIO(png.content)).size == (240, 320)


def test_a_heic_claiming_30000x30000_is_refused_before_anything_decodes_it(api):
    data = photos.encode(photos.photo(64, 64), "heic")
    at = data.index(b"ispe")
    data = data[: at + 8] + struct.pack(">II", 30000, 30000) + data[at + 16 :]
    err = _error(_post(api, "bomb.heic", data), 413, "too_many_pixels")
    assert "30000x30000" in err["message"]


def test_the_result_keeps_the_colour_profile_the_exif_and_the_dpi(api):
    data = photos.encode(photos.photo(200, 150), "jpeg")
    done = wait_job(api, _post(api, "p.jpg", data, upscale="2", **FAST).json()["id"])
    im = Image.open(io.BytesIO(api.get(f"{api.base}{done['links']['result']}").content))
    assert im.info["icc_profile"] == photos.icc_profile()
    assert im.getexif().get_ifd(0x8769).get(0x9003) == photos.DATE_TAKEN
    assert im.getexif().get(0x010F) == "kadr-test"
    assert [round(d) for d in im.info["dpi"]] == [72, 72]


def test_an_output_over_the_limit_is_refused_naming_the_largest_upscale(api):
    data = _flat_png(6000, 5000)  # 30 MP: x2 would be 120 MP, over the 100 MP default
    err = _error(_post(api, "scan.png", data, upscale="2", **FAST), 413, "output_too_large")
    assert err["details"]["largest_upscale"] == 1
    assert "largest upscale that fits is 1" in err["message"] and "12000x10000" in err["message"]
    # Left out, the upscale is the largest up to 2 that fits.
    job = _post(api, "scan.png", data, **FAST).json()
    assert job["params"]["upscale"] == 1
    small = _post(api, "small.png", flat_png(), **FAST).json()
    assert small["params"]["upscale"] == 2
    # A one-request batch is refused whole, with the reason per file.
    resp = api.post(
        f"{api.base}/api/v1/enhance/batch",
        data={"upscale": "3", **FAST},
        files=[("files", ("a.png", flat_png())), ("files", ("scan.png", data))],
    )
    err = _error(resp, 413, "invalid_batch")
    assert [d["code"] for d in err["details"]] == ["output_too_large"]


def test_the_job_carries_its_estimate_and_time_limits(api):
    job = _post(
        api, "p.jpg", photos.encode(photos.photo(400, 300), "jpeg"), upscale="2", quality="medium", max_faces="1"
    ).json()
    est = job["estimate"]
    assert est["seconds"] > 0 and est["soft_time_limit_seconds"] >= 600
    assert est["time_limit_seconds"] > est["soft_time_limit_seconds"]
    wait_job(api, job["id"])


def test_a_running_photo_shows_its_progress_live_and_stops_when_canceled(api):
    data = photos.encode(photos.photo(900, 700), "jpeg")
    job = _post(api, "slow.jpg", data, quality="medium", upscale="2", max_faces="0").json()
    url = f"{api.base}/api/v1/jobs/{job['id']}/events"
    # Watch until it is well under way, then cancel.
    seen = sse_events(api, url, lambda ev, d: d["state"] == "running" and d["progress"] >= 0.2)
    assert [ev for ev, _ in seen][0] == "progress" and seen[-1][1]["progress"] >= 0.2
    canceled = api.post(f"{api.base}/api/v1/jobs/{job['id']}/cancel")
    assert canceled.status_code == 200 and canceled.json()["state"] == "canceled"
    end = sse_events(api, url, lambda ev, d: ev == "end")
    assert end[-1][0] == "end" and end[-1][1]["state"] == "canceled"
    _error(api.post(f"{api.base}/api/v1/jobs/{job['id']}/cancel"), 409, "already_ended")
    _error(api.get(f"{api.base}/api/v1/jobs/{job['id']}/result"), 409, "not_ready")
    # The worker is free at once for the next photo.
    nxt = wait_job(api, _post(api, "next.png", flat_png(seed=21), **FAST).json()["id"], timeout=120)
    assert nxt["state"] == "succeeded"
    assert not api.get(f"{api.base}/api/v1/jobs/{job['id']}/result").ok


def test_a_phone_photo_over_nginx_body_buffer_reaches_the_gateway(api):
    """A 12 MP JPEG (2.4 MB) is larger than nginx's 1 MB body buffer: nginx spools it to
    its temp directory, which its worker processes must be able to write (they ran as
    nobody under a root-started stack, and every such upload was nginx's own 500). This
    stack's file limit is below 2.4 MB, so the gateway's JSON answer proves the body
    reached it."""
    data = photos.encode(photos.photo(*photos.SIZES["12mp"]), "jpeg")
    assert len(data) > 2 * 2**20
    _error(_post(api, "IMG_2024.jpg", data, quality="fast", max_faces="0"), 413, "file_too_large")
