"""Memory soak of the camera worker: minutes of a live 720p25 camera, events arriving
all along, process RSS sampled throughout. A ring that leaked frames, an event that
kept its decoded frames, or a buffer over budget would show as a rising line: at 720p
one raw frame is 2.7 MB, so a leak of one frame per event is ~50 MB over the soak.

``KADR_SOAK_SECONDS`` (default 180) sets the length; the RSS series is written next
to the test logs (soak_rss.json) for inspection.
"""

from __future__ import annotations

import json
import os
import statistics
import time

import psutil
import pytest
import requests

from services.contracts.camera_auth import signed_headers
from testbed.mjpeg_server import MjpegServer
from testbed.stack import wait_for
from tests.e2e.conftest import create_key, running_stack

pytestmark = pytest.mark.slow
SECRET = "soak-camera-secret-0123456789"
WARM_UP_S = 40.0  # the 10 s ring fills, allocator arenas settle, the cascade loads
MAX_GROWTH_BYTES = 24 * 2**20


def test_camera_worker_rss_stays_flat_while_streaming(redis_server, tmp_path_factory):
    soak_s = float(os.environ.get("KADR_SOAK_SECONDS", "180"))
    base = tmp_path_factory.mktemp("soak")
    with MjpegServer(fps=25, period=3.0, sharp_seconds=0.3, size=(720, 1280)) as srv:
        cameras = [{"id": "road", "source": srv.url, "fps": 25, "buffer_seconds": 10, "auth": "hmac", "secret": SECRET}]
        with running_stack(
            redis_server, base / "models", base, services=("camera",), KADR_CAMERAS=json.dumps(cameras)
        ) as s:
            api = requests.Session()
            api.headers["Authorization"] = f"Bearer {create_key(s['env'], 'soak')}"
            proc = psutil.Process(s["worker"].p.pid)
            samples: list[tuple[float, int]] = []
            events: list[str] = []
            t0 = time.monotonic()
            next_event = t0 + 5
            while (now := time.monotonic()) - t0 < WARM_UP_S + soak_s:
                samples.append((now - t0, proc.memory_info().rss))
                if now >= next_event:
                    body = json.dumps({"ts": time.time(), "vehicle_box": [200, 200, 640, 360]}).encode()
                    r = requests.post(
                        f"{s['url']}/api/v1/camera/road/events",
                        data=body,
                        timeout=10,
                        headers={"Content-Type": "application/json", **signed_headers(SECRET, body, time.time())},
                    )
                    assert r.status_code == 202, r.text
                    events.append(r.json()["id"])
                    next_event = now + 3
                time.sleep(1.0)  # the sampling period, not synchronisation
            cams = api.get(f"{s['url']}/api/v1/cameras", timeout=10).json()["cameras"]
            buf = cams[0]["buffer"]

            def finished(eid):
                e = api.get(f"{s['url']}/api/v1/camera/events/{eid}", timeout=10).json()
                return e if e["state"] in ("succeeded", "failed") else None

            results = [wait_for(lambda e=e: finished(e), 60, f"event {e}", interval=0.2) for e in events]
    (base / "soak_rss.json").write_text(json.dumps({"samples": samples, "events": len(events)}))
    assert all(e["state"] == "succeeded" for e in results), [e["error"] for e in results if e["error"]]
    assert buf["seconds_held"] >= 9.5 and buf["dropped_budget_total"] == 0, buf
    steady = [rss for t, rss in samples if t >= WARM_UP_S]
    third = max(1, len(steady) // 3)
    first, last = statistics.median(steady[:third]), statistics.median(steady[-third:])
    print(
        f"camera worker RSS: first third {first / 2**20:.1f} MiB, last third {last / 2**20:.1f} MiB, "
        f"max {max(steady) / 2**20:.1f} MiB, {len(events)} events, ring {buf['bytes'] / 2**20:.1f} MiB"
    )
    assert last - first < MAX_GROWTH_BYTES, (first, last)
    # 10 s of raw 720p25 BGR is 691 MB; a ring holding decoded frames could not stay under half.
    assert max(steady) < 1280 * 720 * 3 * 25 * 10 / 2
