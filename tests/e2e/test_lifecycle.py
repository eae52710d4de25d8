"""Data lifecycle end to end: every DELETE leaves nothing behind (walked in the blob store
and in Redis), keys' scopes, each key's usage from the janitor, and the janitor's budget
removing the oldest finished thing, on the real stack (three workers, gunicorn, nginx)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import requests

from services.contracts.camera_auth import signed_headers
from testbed.photos import flat_png
from testbed.stack import ROOT, sample, scrape, start_ops, wait_for
from testbed.synthetic_video import make_video, write_video
from tests.e2e.conftest import create_key, full_stack

pytestmark = pytest.mark.slow
SECRET = "lifecycle-camera-secret-0123456789"
FAST = {"quality": "fast", "upscale": "2", "max_faces": "1"}


@pytest.fixture(scope="module")
def life(redis_server, models_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("lifecycle")
    with full_stack(redis_server, models_dir, base, SECRET) as s:
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {create_key(s['env'], 'owner')}"
        s["api"] = api
        yield s


def _wait(api, url, path, states=("succeeded",)):
    def done():
        j = api.get(url + path, timeout=10).json()
        return j if j["state"] in ("succeeded", "failed", "canceled") else None

    j = wait_for(done, 240, path, interval=0.3)
    assert j["state"] in states, j.get("error")
    return j


def _photo(s) -> str:
    r = s["api"].post(
        f"{s['url']}/api/v1/enhance", files={"file": ("p.png", flat_png(seed=int(time.time() * 1000)))}, data=FAST
    )
    assert r.status_code == 202, r.text
    _wait(s["api"], s["url"], f"/api/v1/jobs/{r.json()['id']}")
    return r.json()["id"]


def _video(s) -> dict:
    video = make_video(10, 96, 128, speed=3.0, seed=int(time.time()) % 1000)
    path = write_video(video.frames, s["base"] / f"clip-{time.monotonic_ns()}.mp4")
    with open(path, "rb") as f:
        r = s["api"].post(
            f"{s['url']}/api/v1/videos",
            files={"file": ("clip.mp4", f)},
            data={"target_class": "person", "processing_size": "128"},
        )
    assert r.status_code == 202, r.text
    vid = r.json()["id"]
    v = wait_for(
        lambda: (
            (j := s["api"].get(f"{s['url']}/api/v1/videos/{vid}").json())["state"] == "succeeded"
            and all(x["state"] == "succeeded" for x in j["results"])
            and j
        ),
        240,
        "the video",
    )
    r = s["api"].post(f"{s['url']}/api/v1/videos/{vid}/stabilize", json={"method": "exponential"})
    assert r.status_code == 202, r.text
    rid = r.json()["id"]
    wait_for(
        lambda: s["api"].get(f"{s['url']}/api/v1/jobs/{rid}").json()["state"] == "succeeded", 240, "the result set"
    )
    return {"id": vid, "results": [x["id"] for x in v["results"]] + [rid]}


def _event(s) -> str:
    url = s["url"]
    wait_for(
        lambda: (
            (s["api"].get(f"{url}/api/v1/cameras").json()["cameras"][0]["buffer"] or {}).get("seconds_held", 0) >= 2
        ),
        30,
        "the camera buffer",
    )
    body = json.dumps({"ts": time.time()}).encode()
    r = requests.post(
        f"{url}/api/v1/camera/gate/events",
        data=body,
        headers={"Content-Type": "application/json", **signed_headers(SECRET, body, time.time())},
    )
    assert r.status_code == 202, r.text
    _wait(s["api"], url, f"/api/v1/camera/events/{r.json()['id']}")
    return r.json()["id"]


def _batch(s) -> str:
    api, url = s["api"], s["url"]
    b = api.post(f"{url}/api/v1/batches", json={"params": {"quality": "fast", "upscale": 1, "max_faces": 1}}).json()
    r = api.post(
        f"{url}/api/v1/batches/{b['id']}/items",
        files=[("files", (f"{i}.png", flat_png(seed=900 + i))) for i in range(2)],
    )
    assert r.status_code == 202, r.text
    api.post(f"{url}/api/v1/batches/{b['id']}/close").raise_for_status()
    wait_for(
        lambda: api.get(f"{url}/api/v1/batches/{b['id']}", params={"limit": 0}).json()["state"] == "succeeded",
        240,
        "the batch",
    )
    return b["id"]


def leftovers(s, ident: str) -> list[str]:
    """Every file and Redis key naming ``ident``, and every index holding it."""
    r = s["redis"]
    found = [str(p) for p in (s["base"] / "blobs").rglob("*") if ident in str(p)]
    for key in r.scan_iter(count=1000):
        if ident in key:
            found.append(f"key {key}")
            continue
        kind = r.type(key)
        if kind == "zset" and r.zscore(key, ident) is not None:
            found.append(f"zset {key}")
        elif kind == "set" and r.sismember(key, ident):
            found.append(f"set {key}")
        elif kind == "list" and not key.startswith(("enhance", "segment", "camera")) and ident in r.lrange(key, 0, -1):
            found.append(f"list {key}")
    return found


def test_every_delete_leaves_no_file_record_or_index_entry(life):
    s, api, url = life, life["api"], life["url"]
    photo = _photo(s)
    assert leftovers(s, photo)  # the walk finds what exists
    r = api.delete(f"{url}/api/v1/jobs/{photo}")
    assert r.status_code == 200 and r.json()["files_removed"] >= 2, r.text
    assert leftovers(s, photo) == []

    video = _video(s)
    assert api.delete(f"{url}/api/v1/videos/{video['id']}").status_code == 200
    for ident in [video["id"], *video["results"]]:
        assert leftovers(s, ident) == [], ident

    # A video's id given to /jobs removes the video too (it used to leave its files).
    other = _video(s)
    one_set = other["results"][-1]
    assert api.delete(f"{url}/api/v1/jobs/{one_set}").status_code == 200  # one result set alone
    assert leftovers(s, one_set) == []
    assert [x["id"] for x in api.get(f"{url}/api/v1/videos/{other['id']}").json()["results"]] == other["results"][:-1]
    r = api.delete(f"{url}/api/v1/jobs/{other['id']}")
    assert r.status_code == 200 and r.json()["files_removed"] > 10, r.text
    for ident in [other["id"], *other["results"]]:
        assert leftovers(s, ident) == [], ident

    batch = _batch(s)
    items = [x["id"] for x in api.get(f"{url}/api/v1/batches/{batch}/items").json()["items"]]
    assert api.delete(f"{url}/api/v1/jobs/{items[0]}").status_code == 409  # an item goes with its batch
    assert api.delete(f"{url}/api/v1/batches/{batch}").status_code == 200
    for ident in [batch, *items]:
        assert leftovers(s, ident) == [], ident

    event = _event(s)
    assert leftovers(s, event)
    reader = requests.Session()
    reader.headers["Authorization"] = f"Bearer {create_key(s['env'], 'watcher', 'cameras:read')}"
    assert reader.get(f"{url}/api/v1/camera/events/{event}").status_code == 200
    r = reader.delete(f"{url}/api/v1/camera/events/{event}")
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_scope", r.text
    assert "cameras:manage" in r.json()["error"]["message"]
    assert api.delete(f"{url}/api/v1/camera/events/{event}").status_code == 200
    assert leftovers(s, event) == []
    assert api.get(f"{url}/api/v1/camera/events/{event}").status_code == 404
    assert event not in [e["id"] for e in api.get(f"{url}/api/v1/camera/events").json()["events"]]


def test_scopes_limit_what_a_key_reaches(life):
    url = life["url"]
    photos_only = requests.Session()
    photos_only.headers["Authorization"] = f"Bearer {create_key(life['env'], 'photos', 'photos')}"
    assert photos_only.get(f"{url}/api/v1/jobs").status_code == 200
    for path in (
        "/api/v1/videos/00000000-0000-0000-0000-000000000000",
        "/api/v1/ops",
        "/api/v1/cameras",
        "/api/v1/camera/events",
    ):
        r = photos_only.get(url + path)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_scope", (path, r.text)
    assert photos_only.get(f"{url}/api/v1/usage").status_code == 200  # every key sees its own usage
    bad = subprocess.run(
        [sys.executable, "-m", "client.cli", "keys", "create", "x", "--scope", "admin"],
        cwd=ROOT,
        env={**__import__("os").environ, **life["env"]},
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "unknown scope" in bad.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "client.cli", "keys", "list"],
        cwd=ROOT,
        env={**__import__("os").environ, **life["env"]},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert any(line.split("\t")[1] == "photos" and line.split("\t")[3] == "photos" for line in listed.splitlines())


def test_usage_from_the_janitor_then_its_budget_removes_the_oldest_finished(life):
    s, api, url = life, life["api"], life["url"]
    first, second = _photo(s), _photo(s)
    janitor, metrics_url = start_ops("janitor", s["env"], s["base"] / "logs", KADR_RETENTION_INTERVAL_SECONDS="1")
    try:
        health = metrics_url.replace("/metrics", "/healthz")
        wait_for(lambda: requests.get(health, timeout=2).status_code == 200, 20, "janitor /healthz")
        u = wait_for(
            lambda: (j := api.get(f"{url}/api/v1/usage").json())["kinds"]["photos"]["count"] >= 2 and j,
            20,
            "usage with both photos",
        )
        assert u["as_of"] and u["kinds"]["photos"]["bytes"] > 0 and u["kinds"]["photos"]["next_expiry"] > time.time()
        assert u["kinds"]["events"]["count"] >= 0 and u["ttl_seconds"]["photos"] == 7 * 24 * 3600
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "client.cli",
                "usage",
                "--server",
                url,
                "--key",
                api.headers["Authorization"].split()[1],
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.startswith("photos") and "as of" in out
        m = scrape(metrics_url)
        assert sample(m, "kadr_storage_bytes", kind="photos") > 0
        assert sample(m, "kadr_storage_free_bytes") > 0
        ops = api.get(f"{url}/api/v1/ops").json()
        assert ops["storage"]["kinds"]["photos"]["count"] >= 2
    finally:
        janitor.stop()
    stored = sum(t["bytes"] for t in u["kinds"].values())
    # A budget one photo short of what is stored: the older photo goes, the newer stays.
    janitor, metrics_url = start_ops(
        "janitor",
        s["env"],
        s["base"] / "logs",
        KADR_RETENTION_INTERVAL_SECONDS="1",
        KADR_STORAGE_BUDGET_BYTES=str(stored - 1),
    )
    try:
        wait_for(lambda: api.get(f"{url}/api/v1/jobs/{first}").status_code == 404, 20, "the oldest photo removed")
        assert api.get(f"{url}/api/v1/jobs/{second}").status_code == 200
        assert leftovers(s, first) == []
        m = scrape(metrics_url)
        assert sample(m, "kadr_retention_removed_total", kind="photos", reason="disk_budget") == 1
    finally:
        janitor.stop()
