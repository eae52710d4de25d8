"""Finding 6: a signed camera request could be replayed within the 5-minute window, and
a camera retrying a 202 it lost made a second event. A delivery seen before (same
Idempotency-Key, same HMAC signature, or, for a token camera, the same body naming its
event time) now gets the original event back with 200 and is never processed twice.
And RTSP credentials in a source's error no longer reach GET /api/v1/cameras or the log."""

from __future__ import annotations

import json
import socket
import time

from services.camera.ring_buffer import PacketRing
from services.camera.sources import SourceReader
from services.contracts.camera_auth import signed_headers
from services.contracts.settings import CameraConfig
from services.contracts.tasks import CAMERA_QUEUE

HMAC_SECRET = "hmac-camera-secret-0123456789"
TOKEN = "token-camera-secret-0123456789"
CAMERAS = [{"id": "gate", "auth": "hmac", "secret": HMAC_SECRET}, {"id": "yard", "auth": "token", "secret": TOKEN}]


def _events(client, auth) -> list[str]:
    return [e["id"] for e in client.get("/api/v1/camera/events", headers=auth).json["events"]]


def test_a_replayed_signed_event_is_answered_with_the_original_and_not_processed_again(gateway, redis_client):
    client, auth, _ = gateway(cameras=CAMERAS)
    body = json.dumps({"plate": "A123BC"}).encode()
    headers = {**signed_headers(HMAC_SECRET, body, time.time()), "Content-Type": "application/json"}
    first = client.post("/api/v1/camera/gate/events", data=body, headers=headers)
    assert first.status_code == 202
    for _ in range(3):  # an attacker replaying the captured request, or the camera retrying
        again = client.post("/api/v1/camera/gate/events", data=body, headers=headers)
        assert again.status_code == 200 and again.json["id"] == first.json["id"]
        assert again.headers["Idempotent-Replayed"] == "true"
    assert _events(client, auth) == [first.json["id"]]
    assert redis_client.llen(CAMERA_QUEUE) == 1  # one task, not four
    # A new signature (a new request) is a new event.
    headers = {**signed_headers(HMAC_SECRET, body, time.time() + 1), "Content-Type": "application/json"}
    assert client.post("/api/v1/camera/gate/events", data=body, headers=headers).status_code == 202


def test_a_token_camera_retrying_an_event_with_its_time_gets_the_same_event(gateway):
    client, auth, _ = gateway(cameras=CAMERAS)
    url = f"/api/v1/camera/yard/events?token={TOKEN}"
    body = {"ts": time.time() - 2, "plate": "B777OP"}
    first = client.post(url, json=body)
    again = client.post(url, json=body)
    assert first.status_code == 202 and again.status_code == 200 and again.json["id"] == first.json["id"]
    keyed = client.post(url, json={"plate": "C1"}, headers={"Idempotency-Key": "cam-42"})
    assert client.post(url, json={"plate": "C1"}, headers={"Idempotency-Key": "cam-42"}).json["id"] == keyed.json["id"]
    # Without a time or a key, two identical events are two events.
    assert client.post(url, json={"plate": "D2"}).json["id"] != client.post(url, json={"plate": "D2"}).json["id"]
    assert len(_events(client, auth)) == 4


def test_rtsp_credentials_never_reach_the_cameras_view_or_the_log(caplog):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: connection refused
    cam = CameraConfig(
        id="door",
        source=f"rtsp://admin:S3cr3t%21pw@127.0.0.1:{port}/live",
        auth="token",
        secret="door-camera-secret-012345",
    )
    reader = SourceReader(cam, PacketRing(10, 2**20), timeout=1.0, backoff_initial=0.05)
    reader.up = True  # as after a good run: the failure is logged
    with caplog.at_level("WARNING"):
        reader.start()
        deadline = time.monotonic() + 20
        while not reader.last_error and time.monotonic() < deadline:
            time.sleep(0.05)
        reader.stop()
        reader.join(5)
    assert reader.last_error, "the source never failed"
    text = reader.last_error + " ".join(str(r.__dict__) for r in caplog.records)
    assert "S3cr3t" not in text and "admin:" not in text, text
    assert f"rtsp://***@127.0.0.1:{port}" in reader.last_error or "***" in reader.last_error
