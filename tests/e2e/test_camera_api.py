"""Camera events end to end through nginx: a real camera worker (``--pool threads``)
buffering a live MJPEG camera, signed webhooks, the snow photo, plates from uploads,
backlog 503s, buffer health and the outbound webhook."""

from __future__ import annotations

import io
import json
import time

import av
import cv2
import pytest
import requests
from PIL import Image

from services.contracts.camera_auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature, signed_headers
from testbed.mjpeg_server import MjpegServer
from testbed.plates import scene_with_plate
from testbed.stack import start_ops, wait_for
from tests.e2e.conftest import create_key, running_stack
from tests.fixtures.http_receiver import Receiver

pytestmark = pytest.mark.slow
GATE_SECRET = "gate-camera-secret-0123456789"
YARD_TOKEN = "yard-camera-token-0123456789"
BACKLOG = 3
TERMINAL = ("succeeded", "failed", "canceled")


@pytest.fixture(scope="module")
def cam(redis_server, tmp_path_factory):
    base = tmp_path_factory.mktemp("camera")
    receiver = Receiver()
    with MjpegServer(fps=10, period=4.0, sharp_seconds=0.5) as srv:
        cameras = [
            {
                "id": "gate",
                "source": srv.url,
                "fps": 10,
                "buffer_seconds": 10,
                "auth": "hmac",
                "secret": GATE_SECRET,
                "webhook_url": receiver.url,
            },
            {"id": "yard", "auth": "token", "secret": YARD_TOKEN},
        ]
        with running_stack(
            redis_server,
            base / "models",
            base,
            services=("camera",),
            KADR_CAMERAS=json.dumps(cameras),
            KADR_CAMERA_MAX_BACKLOG=str(BACKLOG),
        ) as s:
            # The janitor delivers the outbound webhook (from the outbox).
            janitor, _ = start_ops("janitor", s["env"], base / "logs")
            s["srv"], s["receiver"] = srv, receiver
            s["api"] = requests.Session()
            s["api"].headers["Authorization"] = f"Bearer {create_key(s['env'], 'cam')}"
            try:
                yield s
            finally:
                janitor.stop()
    receiver.close()


def _post_signed(s, camera_id, event: dict, secret=GATE_SECRET, now=None):
    body = json.dumps(event).encode()
    headers = {"Content-Type": "application/json", **signed_headers(secret, body, now or time.time())}
    return requests.post(f"{s['url']}/api/v1/camera/{camera_id}/events", data=body, headers=headers, timeout=10)


def _wait_event(s, event_id, timeout=30):
    def done():
        e = s["api"].get(f"{s['url']}/api/v1/camera/events/{event_id}", timeout=10).json()
        return e if e["state"] in TERMINAL else None

    return wait_for(done, timeout, f"camera event {event_id}", interval=0.1)


def _err(resp, status, code):
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code, resp.json()


def _gate_buffer(s):
    cams = s["api"].get(f"{s['url']}/api/v1/cameras", timeout=10).json()["cameras"]
    return next(c for c in cams if c["id"] == "gate")["buffer"]


def test_snow_photo_is_the_sharp_frame_before_the_event(cam):
    buf = wait_for(lambda: (b := _gate_buffer(cam)) and b["seconds_held"] >= 3 and b, 30, "the gate buffer to hold 3 s")
    assert buf["up"] is True and buf["bytes"] > 0 and buf["mode"] == "jpeg"
    assert 4 <= buf["fps"] <= 12 and buf["last_frame_age_seconds"] < 3.0  # camera at 10 fps
    # Aim 3 s after a sharp moment whose neighbours 1 s either side are in the buffer.
    srv = cam["srv"]
    center = srv.sharp_center_before(time.time() - 3)
    if center - 1.3 < buf["oldest_ts"]:
        center += srv.period
    event_ts = center + 3
    wait_for(lambda: time.time() >= event_ts + 0.3, 10, "the event moment to pass")
    resp = _post_signed(cam, "gate", {"ts": event_ts, "vehicle_box": [0, 0, 320, 240], "plate": "A123BC77", "lane": 2})
    assert resp.status_code == 202, resp.text
    assert resp.headers["Location"] == f"/api/v1/camera/events/{resp.json()['id']}"
    ev = _wait_event(cam, resp.json()["id"])
    assert ev["state"] == "succeeded", ev["error"]
    assert ev["extra"] == {"lane": 2} and ev["plate"] == "A123BC77"
    res = ev["result"]
    scores = {c["offset"]: c["score"] for c in res["candidates"]}
    assert sorted(scores) == [2.0, 3.0, 4.0]
    assert res["snow"]["offset"] == 3.0, res
    assert abs(res["snow"]["ts"] - center) < 0.3
    assert scores[3.0] > 10 * max(scores[2.0], scores[4.0])
    assert res["timings"]["lookup_seconds"] >= 0  # reported; bench/, not tests, times it
    assert res["rss_bytes"]["start"] > 0 and res["rss_bytes"]["end"] > 0
    for kind in ("snow", "candidate_0", "candidate_1", "candidate_2"):
        assert kind in ev["images"]
    img = cam["api"].get(cam["url"] + ev["images"]["snow"], timeout=10)
    assert img.status_code == 200 and img.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(img.content)).size == (320, 240)
    # Listed, newest first, for every key; filters by camera and time.
    listed = (
        cam["api"]
        .get(f"{cam['url']}/api/v1/camera/events", params={"camera": "gate", "since": event_ts - 1}, timeout=10)
        .json()
    )
    assert ev["id"] in [e["id"] for e in listed["events"]]
    assert requests.get(f"{cam['url']}/api/v1/camera/events/{ev['id']}", timeout=10).status_code == 401
    # The outbound webhook got the finished event, signed with the camera's secret.
    headers, body = wait_for(
        lambda: next((p for p in cam["receiver"].posts if json.loads(p[1])["id"] == ev["id"]), None),
        20,
        "the outbound webhook",
    )
    assert json.loads(body)["result"]["snow"]["offset"] == 3.0
    assert headers[SIGNATURE_HEADER] == signature(GATE_SECRET, headers[TIMESTAMP_HEADER], body)
    _check_clip(cam, ev, event_ts)


def _check_clip(cam, ev, event_ts):
    """The clip: the camera's default 5 s before and 3 s after the event (the "after"
    part was waited for), encoded from the JPEG ring, served with Range support."""
    clip = ev["result"]["clip"]
    assert clip["state"] == "ready" and "blob" not in clip, clip
    assert ev["links"]["clip"] == f"/api/v1/camera/events/{ev['id']}/clip.mp4"
    assert clip["asked"] == {"start_ts": round(event_ts - 5, 3), "end_ts": round(event_ts + 3, 3)}
    assert (clip["mode"], clip["codec"], clip["width"], clip["height"]) == ("encoded", "h264", 320, 240)
    frame_s = 1 / 10
    assert event_ts - 5 - frame_s <= clip["start_ts"] and clip["end_ts"] <= event_ts + 3 + frame_s
    assert clip["end_ts"] >= event_ts + 3 - 3 * frame_s  # the after part arrived before the cut
    resp = cam["api"].get(cam["url"] + ev["links"]["clip"], timeout=10)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "video/mp4"
    assert len(resp.content) == clip["bytes"]
    with av.open(io.BytesIO(resp.content)) as c:
        s = c.streams.video[0]
        times = [float(f.pts * f.time_base) for f in c.decode(s)]
        assert float(s.duration * s.time_base) == pytest.approx(clip["seconds"], abs=0.01)
    assert len(times) == clip["frames"] >= 6 / frame_s * 0.8  # at 10 fps, most of 6+ seconds
    assert times[-1] - times[0] == pytest.approx(clip["end_ts"] - clip["start_ts"], abs=0.01)
    part = cam["api"].get(cam["url"] + ev["links"]["clip"], headers={"Range": "bytes=100-199"}, timeout=10)
    assert part.status_code == 206 and part.content == resp.content[100:200]


def test_bad_credentials_and_unknown_camera(cam):
    url = cam["url"]
    body = json.dumps({"ts": time.time()}).encode()
    good = signed_headers(GATE_SECRET, body, time.time())
    tampered = requests.post(f"{url}/api/v1/camera/gate/events", data=body + b" ", headers=good, timeout=10)
    _err(tampered, 401, "unauthorized")
    _err(_post_signed(cam, "gate", {"ts": time.time()}, secret="not-the-gate-secret-000"), 401, "unauthorized")
    _err(_post_signed(cam, "gate", {"ts": time.time()}, now=time.time() - 600), 401, "unauthorized")
    _err(requests.post(f"{url}/api/v1/camera/gate/events", json={"ts": time.time()}, timeout=10), 401, "unauthorized")
    _err(
        requests.post(f"{url}/api/v1/camera/yard/events", params={"token": "wrong"}, json={}, timeout=10),
        401,
        "unauthorized",
    )
    _err(
        requests.post(f"{url}/api/v1/camera/yard/events", headers={"X-Kadr-Token": GATE_SECRET}, json={}, timeout=10),
        401,
        "unauthorized",
    )
    _err(_post_signed(cam, "nope", {"ts": time.time()}), 404, "not_found")
    # An API key is no camera credential, and the events API still wants a key.
    _err(
        requests.post(
            f"{url}/api/v1/camera/gate/events",
            json={},
            headers={"Authorization": cam["api"].headers["Authorization"]},
            timeout=10,
        ),
        401,
        "unauthorized",
    )
    _err(requests.get(f"{url}/api/v1/cameras", timeout=10), 401, "unauthorized")
    # Nothing refused was recorded.
    assert all(
        e["camera"] != "yard" for e in cam["api"].get(f"{url}/api/v1/camera/events", timeout=10).json()["events"]
    )


def test_plates_from_uploaded_image_with_token_in_query(cam):
    img, (px, py, pw, ph) = scene_with_plate(480, 640, plate_width=200, seed=3)
    ok, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    resp = requests.post(
        f"{cam['url']}/api/v1/camera/yard/events",
        params={"token": YARD_TOKEN},
        files={"overview": ("car.jpg", jpg.tobytes(), "image/jpeg")},
        data={"ts": str(time.time()), "plate": "A123BC77", "gate": "north"},
        timeout=10,
    )
    assert resp.status_code == 202, resp.text
    ev = _wait_event(cam, resp.json()["id"])
    assert ev["state"] == "succeeded", ev["error"]
    assert ev["extra"] == {"gate": "north"} and ev["uploads"]["overview"]["width"] == 640
    plates = ev["result"]["plates"]
    assert plates, ev["result"]
    bx, by, bw, bh = plates[0]["box"]
    assert bx < px + pw / 2 < bx + bw and by < py + ph / 2 < by + bh  # around the plate's centre
    crop = cam["api"].get(cam["url"] + ev["images"]["plate_0"], timeout=10)
    assert crop.status_code == 200 and Image.open(io.BytesIO(crop.content)).size[0] >= bw
    up = cam["api"].get(cam["url"] + ev["images"]["overview"], timeout=10)
    assert up.status_code == 200 and up.content == jpg.tobytes()
    _err(cam["api"].get(f"{cam['url']}/api/v1/camera/events/{ev['id']}/images/plate_9", timeout=10), 404, "not_found")


def test_backlog_full_is_503_and_every_accepted_event_is_processed(cam):
    from celery import Celery

    control = Celery(broker=cam["env"]["KADR_REDIS_URL"]).control
    node = cam["worker"].node
    # Hold the worker off the queue so the backlog builds up, as behind a slow worker.
    assert control.cancel_consumer("camera", destination=[node], reply=True, timeout=5)
    try:
        accepted, refused = [], []
        for _ in range(BACKLOG + 3):
            r = _post_signed(cam, "gate", {"ts": time.time()})
            (accepted if r.status_code == 202 else refused).append(r)
        assert len(accepted) == BACKLOG, [r.text for r in refused]
        for r in refused:
            _err(r, 503, "camera_backlog_full")
            assert int(r.headers["Retry-After"]) > 0
    finally:
        assert control.add_consumer("camera", destination=[node], reply=True, timeout=5)
    for r in accepted:
        assert _wait_event(cam, r.json()["id"])["state"] == "succeeded"
    metrics = requests.get(f"{cam['gateway_url']}/metrics", timeout=10).text
    assert 'reason="camera_backlog_full"' in metrics


def test_worker_and_gateway_metrics(cam):
    """The camera worker's own endpoint (buffers, memory, tasks) and the gateway's
    request series, after the events above."""
    from testbed.stack import sample, scrape

    wait_for(lambda: (_gate_buffer(cam) or {}).get("seconds_held", 0) >= 3, 30, "the gate buffer")
    ev = _post_signed(cam, "gate", {"ts": time.time()})
    assert ev.status_code == 202
    assert _wait_event(cam, ev.json()["id"])["state"] == "succeeded"
    m = scrape(cam["worker"].metrics_url)
    assert sample(m, "kadr_camera_buffer_bytes", camera="gate") > 0
    assert sample(m, "kadr_camera_buffer_seconds", camera="gate") >= 3
    assert sample(m, "kadr_camera_buffer_max_bytes", camera="gate") == 128 * 2**20
    assert sample(m, "kadr_camera_last_frame_age_seconds", camera="gate") < 3
    assert sample(m, "kadr_camera_buffer_dropped_frames_total", camera="gate", reason="budget") == 0
    assert sample(m, "kadr_camera_source_up", camera="gate") == 1
    assert sample(m, "kadr_camera_buffer_bytes", camera="yard") is None  # no source, no ring
    assert sample(m, "kadr_worker_resident_memory_bytes", service="camera") > 50e6
    assert sample(m, "kadr_worker_processes", service="camera") == 1  # threads pool
    assert sample(m, "kadr_worker_jobs_total", service="camera", outcome="succeeded") >= 1
    assert sample(m, "kadr_worker_task_duration_seconds_count", task="camera.event") >= 1
    assert sample(m, "kadr_worker_queue_wait_seconds_count", task="camera.event") >= 1
    assert sample(m, "kadr_worker_model_load_seconds_count", model="plate_cascade") == 1
    assert "kadr_worker_cuda_memory_allocated_bytes" not in m  # no GPU: no series, not zeros
    g = scrape(f"{cam['gateway_url']}/metrics")
    assert (
        sample(g, "kadr_gateway_requests_total", route="/api/v1/camera/<camera_id>/events", method="POST", status="202")
        >= 1
    )
    assert (
        sample(g, "kadr_gateway_requests_total", route="/api/v1/camera/<camera_id>/events", method="POST", status="401")
        >= 1
    )
    assert (
        sample(g, "kadr_gateway_request_duration_seconds_count", route="/api/v1/camera/events/<event_id>", method="GET")
        >= 1
    )
    assert not any(ev.json()["id"] in str(lab) for lab, _ in g["kadr_gateway_requests_total"])
