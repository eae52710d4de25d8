"""Finding 8: every refusal is a 4xx in the API's JSON shape. Inputs the review found
answered with a 500 (or with nginx's and gunicorn's HTML pages), each answered now with
its code; a client's X-Request-ID can no longer break the JSON it is pasted into; and
finding 6's part: a camera's ?token= never reaches nginx's access log."""

from __future__ import annotations

import io
import json
import socket
import zipfile

import pytest
import requests

from services.store.jobs import JobStore
from testbed.photos import flat_png
from testbed.stack import gateway_behind_nginx, kadr_env, wait_for

CAMERA_TOKEN = "shape-camera-token-0123456789"


def _code(resp) -> tuple[int, str]:
    return resp.status_code, resp.json["error"]["code"]


def test_inputs_that_were_500s_are_4xx_json(gateway, redis_client):
    client, auth, _ = gateway(cameras=[{"id": "gate", "auth": "token", "secret": CAMERA_TOKEN}])
    # A webhook box value of infinity (JSON has no such number; Python's parser takes it).
    r = client.post(
        f"/api/v1/camera/gate/events?token={CAMERA_TOKEN}",
        content_type="application/json",
        data='{"vehicle_box": [1, 2, 3, Infinity], "plate": "A1"}',
    )
    assert _code(r) == (400, "invalid_parameters")
    # ?since=nan reached Redis as a score.
    assert _code(client.get("/api/v1/camera/events?since=nan", headers=auth)) == (400, "invalid_parameters")
    # A video's id read as a photo job's result.
    bid = client.post("/api/v1/batches", headers=auth, json={"params": {}}).json["id"]
    owner = redis_client.hget(f"kadr:batch:{bid}", "owner")
    store = JobStore(redis_client, 3600)
    video = store.create(kind="segment", owner=owner, params={}, input={})
    store.create(kind="stabilize", owner=owner, params={}, parent_id=video["id"])
    redis_client.hset(store.job_key(video["id"]), mapping={"state": "succeeded", "result": json.dumps({"frames": 3})})
    assert _code(client.get(f"/api/v1/jobs/{video['id']}/result", headers=auth)) == (404, "no_result_file")
    # Ids that name another record's key (a list: HGETALL on it was a WRONGTYPE error).
    assert _code(client.get(f"/api/v1/jobs/{video['id']}:children", headers=auth)) == (400, "invalid_parameters")
    assert _code(client.get(f"/api/v1/batches/{bid}:items", headers=auth)) == (400, "invalid_parameters")
    # Deeply nested JSON made the parser recurse out.
    deep = "[" * 100_000 + "]" * 100_000
    r = client.post("/api/v1/batches", headers={**auth, "Content-Type": "application/json"}, data=deep)
    assert _code(r) == (400, "invalid_body")
    # A JSON body is held to KADR_MAX_JSON_BYTES (parsed whole in memory).
    big = json.dumps({"params": {}, "name": "x" * (2 * 2**20)})
    r = client.post("/api/v1/batches", headers={**auth, "Content-Type": "application/json"}, data=big)
    assert _code(r) == (413, "payload_too_large") and "KADR_MAX_JSON_BYTES" in r.json["error"]["message"]
    # An encrypted ZIP entry: zipfile raised RuntimeError.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.png", flat_png())
    data = bytearray(buf.getvalue())
    data[6] |= 1  # the "encrypted" bit, in the local header and the central directory
    data[data.index(b"PK\x01\x02") + 8] |= 1
    r = client.post(
        f"/api/v1/batches/{bid}/items", headers=auth, data={"files": (io.BytesIO(bytes(data)), "locked.zip")}
    )
    assert _code(r) == (400, "no_photo_accepted") and r.json["error"]["details"][0]["code"] == "encrypted_entry"


@pytest.fixture(scope="module")
def behind_nginx(redis_server, models_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("shapes")
    env = kadr_env(
        redis_url=redis_server,
        storage_dir=base / "blobs",
        models_dir=models_dir,
        KADR_REQUIRED_QUEUES="[]",
        KADR_CAMERAS=json.dumps([{"id": "gate", "auth": "token", "secret": CAMERA_TOKEN}]),
    )
    with gateway_behind_nginx(env, base / "logs") as (url, _):
        yield url, base / "logs"


def _raw(url: str, payload: bytes) -> tuple[int, dict]:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(payload)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_nginx_and_gunicorn_refusals_are_json(behind_nginx):
    url, _ = behind_nginx
    status, body = _raw(url, b"GARBAGE\r\n\r\n")
    assert status == 400 and body["error"]["code"] == "bad_request"
    status, body = _raw(
        url, b"GET /api/v1/jobs?x=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert status == 414 and body["error"]["code"] == "uri_too_long"
    # Between gunicorn's old 4,094 and nginx's 8,000: reaches the gateway, answered there.
    r = requests.get(f"{url}/api/v1/jobs", params={"x": "a" * 6000}, timeout=10)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = requests.get(f"{url}/api/v1/jobs", headers={"X-Big": "b" * 9000}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "headers_too_large"
    r = requests.post(f"{url}/index.html", timeout=10)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_a_request_id_with_quotes_cannot_break_the_json(behind_nginx):
    url, _ = behind_nginx
    evil = 'x","code":"forged'
    r = requests.get(f"{url}/api/v1/jobs", headers={"X-Request-ID": evil}, timeout=10)
    body = r.json()  # parses: a valid document
    assert body["error"]["code"] == "unauthorized" and body["error"]["request_id"] != evil
    assert r.headers["X-Request-ID"] == body["error"]["request_id"]
    status, body = _raw(
        url,
        b"GET /api/v1/jobs?x=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n"
        b"X-Request-ID: " + evil.encode() + b"\r\nConnection: close\r\n\r\n",
    )
    assert status == 414 and body["error"]["request_id"] != evil  # nginx's own JSON, still whole
    plain = "trace-123.abc"
    assert (
        requests.get(f"{url}/api/v1/jobs", headers={"X-Request-ID": plain}, timeout=10).json()["error"]["request_id"]
        == plain
    )


def test_a_camera_token_in_the_query_is_not_logged(behind_nginx):
    url, logs = behind_nginx
    r = requests.post(
        f"{url}/api/v1/camera/gate/events",
        params={"plate": "1", "token": CAMERA_TOKEN},
        json={"plate": "A1"},
        timeout=10,
    )
    assert r.status_code == 202, r.text
    log = next(logs.glob("nginx-*.log"))
    wait_for(lambda: "camera/gate/events" in log.read_text(), 10, "the access log line")
    text = log.read_text()
    assert CAMERA_TOKEN not in text and "token=REDACTED" in text
