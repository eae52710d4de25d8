"""A full disk answered cleanly, for real: the blob store on an 8 MiB tmpfs the test mounts.

Below the free-space floor uploads and camera webhooks answer 507 ``storage_full`` (no
5xx, nothing stored); a video accepted just above the floor whose frames then fill the
disk fails with ``storage_full`` in the worker, which keeps running, and leaves none of
its partial frames; once space is freed everything works again by itself."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import requests

from services.contracts.camera_auth import signed_headers
from testbed.photos import flat_png
from testbed.stack import wait_for
from testbed.synthetic_video import make_video, write_video
from tests.e2e.conftest import create_key, running_stack

pytestmark = pytest.mark.slow
MIB = 2**20
FLOOR = 1 * MIB
SECRET = "full-disk-camera-secret-0123456789"


@pytest.fixture(scope="module")
def small_disk(redis_server, models_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("fulldisk")
    blobs = base / "blobs"
    blobs.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(blobs)], capture_output=True, text=True
    )
    if mount.returncode != 0:
        pytest.skip(f"mounting a tmpfs needs root: {mount.stderr.strip()}")
    try:
        cameras = [{"id": "gate", "auth": "hmac", "secret": SECRET}]
        with running_stack(
            redis_server,
            models_dir,
            base,
            services=("enhance", "segment"),
            KADR_STORAGE_FREE_FLOOR_BYTES=str(FLOOR),
            KADR_REDIS_MEMORY_CHECK_SECONDS="0",
            KADR_CAMERAS=json.dumps(cameras),
        ) as s:
            api = requests.Session()
            api.headers["Authorization"] = f"Bearer {create_key(s['env'], 'filler')}"
            s["api"], s["blobs"] = api, blobs
            yield s
    finally:
        subprocess.run(["umount", "-l", str(blobs)], check=False)


def _free(path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _fill(blobs, leave: int) -> None:
    """A hidden file (retention neither counts nor removes it) taking all but ``leave``."""
    filler = blobs / ".filler"
    filler.unlink(missing_ok=True)
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, _free(blobs) - leave))
    # The gateway reads free space at every request here (KADR_REDIS_MEMORY_CHECK_SECONDS=0).


def _stored(blobs) -> set[str]:
    return {str(p.relative_to(blobs)) for p in blobs.rglob("*") if p.is_file() and not p.name.startswith(".")}


def _video_file(base, n_frames=40) -> bytes:
    v = make_video(n_frames, 480, 640, speed=3.0, seed=3)
    return write_video(v.frames, base / f"big-{time.monotonic_ns()}.mp4").read_bytes()


def _post_video(s, data: bytes):
    return s["api"].post(
        f"{s['url']}/api/v1/videos",
        files={"file": ("clip.mp4", data)},
        data={"target_class": "person", "processing_size": "520"},
    )


def _webhook(s):
    body = json.dumps({"ts": time.time()}).encode()
    return requests.post(
        f"{s['url']}/api/v1/camera/gate/events",
        data=body,
        headers={"Content-Type": "application/json", **signed_headers(SECRET, body, time.time())},
    )


def test_below_the_floor_uploads_and_webhooks_get_507_and_nothing_is_stored(small_disk):
    s, api, url, blobs = small_disk, small_disk["api"], small_disk["url"], small_disk["blobs"]
    _fill(blobs, FLOOR // 2)
    before = _stored(blobs)
    answers = [
        api.post(
            f"{url}/api/v1/enhance",
            files={"file": ("p.png", flat_png(seed=1))},
            data={"quality": "fast", "upscale": "1", "max_faces": "1"},
        ),
        _post_video(s, _video_file(s["base"], 4)),
        _webhook(s),
        api.post(f"{url}/api/v1/batches", json={"params": {"quality": "fast", "upscale": 1}}),
    ]
    for r in answers:
        assert r.status_code == 507, (r.request.url, r.status_code, r.text)
        err = r.json()["error"]
        assert err["code"] == "storage_full" and "MiB free" in err["message"] and r.headers["Retry-After"]
        assert err["details"]["floor_bytes"] == FLOOR
    assert _stored(blobs) == before
    # Reads keep working while full, so users can find what to delete.
    assert api.get(f"{url}/api/v1/jobs").status_code == 200
    (blobs / ".filler").unlink()


def test_a_job_that_fills_the_disk_fails_cleanly_and_everything_recovers(small_disk):
    s, api, url, blobs = small_disk, small_disk["api"], small_disk["url"], small_disk["blobs"]
    data = _video_file(s["base"])
    # Just above the floor: the upload is accepted; its frames (~40 KB each as JPEG and
    # PNG at 520 px) cannot all fit.
    _fill(blobs, FLOOR + len(data) + 64 * 1024)
    r = _post_video(s, data)
    assert r.status_code == 202, r.text
    vid = r.json()["id"]
    v = wait_for(
        lambda: (j := api.get(f"{url}/api/v1/videos/{vid}").json())["state"] in ("failed", "succeeded") and j,
        120,
        "the video to end",
    )
    assert v["state"] == "failed" and v["error"]["code"] == "storage_full", v
    assert "nothing of it was kept" in v["error"]["message"]
    left = sorted(p for p in _stored(blobs) if p.startswith(f"videos/{vid}/"))
    assert left == [f"videos/{vid}/input"], left  # no frame, mask or manifest half written
    assert not [p for p in blobs.rglob(".tmp-*")]  # nor a temp file of an interrupted write
    # The worker lives on: space freed, the same upload goes through.
    (blobs / ".filler").unlink()
    r = _post_video(s, data)
    assert r.status_code == 202, r.text
    vid2 = r.json()["id"]
    v = wait_for(
        lambda: (j := api.get(f"{url}/api/v1/videos/{vid2}").json())["state"] in ("failed", "succeeded") and j,
        180,
        "the second video",
    )
    assert v["state"] == "succeeded", v
    assert _webhook(s).status_code == 202
