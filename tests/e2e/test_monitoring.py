"""Monitoring end to end: Debian's real Prometheus scrapes the whole running stack
(gateway, the three workers, the exporter, the autoscaler) with
infra/prometheus/prometheus.yml; every Grafana panel's query must return data, GPU
panels must return nothing on a machine without a GPU, and the alert rules must load
and evaluate without errors (``promtool check rules`` runs in tests/unit)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import requests

from services.contracts.camera_auth import signed_headers
from testbed.photos import flat_png
from testbed.stack import ROOT, start_ops, start_prometheus, wait_for
from testbed.synthetic_video import make_video, write_video
from tests.e2e.conftest import create_key, full_stack

sys.path.insert(0, str(ROOT / "infra" / "grafana"))
import build as dashboards  # noqa: E402

pytestmark = pytest.mark.slow
SECRET = "monitor-camera-secret-0123456789"


def _hostport(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[0]


@pytest.fixture(scope="module")
def monitored(redis_server, models_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("monitoring")
    with full_stack(redis_server, models_dir, base, SECRET) as s:
        exporter, exporter_url = start_ops("exporter", s["env"], base / "logs")
        # Dry run: decisions are made and exported, the pools the test relies on stay put.
        scaler, scaler_url = start_ops(
            "autoscaler", s["env"], base / "logs", KADR_AUTOSCALE_DRY_RUN="true", KADR_AUTOSCALE_INTERVAL_SECONDS="1"
        )
        janitor, janitor_url = start_ops("janitor", s["env"], base / "logs", KADR_RETENTION_INTERVAL_SECONDS="1")
        targets = {
            "gateway": _hostport(s["gateway_url"]),
            "exporter": _hostport(exporter_url),
            "autoscaler": _hostport(scaler_url),
            "janitor": _hostport(janitor_url),
            **{svc: _hostport(w.metrics_url) for svc, w in s["workers"].items()},
        }
        prom, prom_url = start_prometheus(targets, base / "prometheus")
        try:
            s["prom"] = prom_url
            _activity(s, base)
            yield s
        finally:
            for p in (prom, janitor, scaler, exporter):
                p.stop()


def _activity(s, base: Path) -> None:
    """One of everything the dashboards show: jobs on every queue, a cache hit, a refusal,
    a camera event."""
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {create_key(s['env'], 'monitor')}"
    url = s["url"]
    jobs = []
    for _ in range(2):  # the second is a result-cache hit
        r = api.post(
            f"{url}/api/v1/enhance",
            files={"file": ("m.png", flat_png(seed=41))},
            data={"quality": "fast", "upscale": "2", "max_faces": "1"},
        )
        assert r.status_code == 202, r.text
        jobs.append(r.json()["id"])
        _wait(api, url, f"/api/v1/jobs/{jobs[-1]}")
    assert api.post(f"{url}/api/v1/enhance", files={"file": ("x.jpg", b"not a photo")}).status_code == 415
    video = make_video(12, 96, 128, speed=3.0, seed=5)
    path = write_video(video.frames, base / "clip.mp4")
    with open(path, "rb") as f:
        r = api.post(
            f"{url}/api/v1/videos",
            files={"file": ("clip.mp4", f)},
            data={"target_class": "person", "processing_size": "128"},
        )
    assert r.status_code == 202, r.text
    _wait(api, url, f"/api/v1/videos/{r.json()['id']}")
    wait_for(
        lambda: (api.get(f"{url}/api/v1/cameras").json()["cameras"][0]["buffer"] or {}).get("seconds_held", 0) >= 2,
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
    _wait(api, url, f"/api/v1/camera/events/{r.json()['id']}")


def _wait(api, url, path):
    def done():
        j = api.get(url + path, timeout=10).json()
        return j if j["state"] in ("succeeded", "failed") else None

    j = wait_for(done, 240, path, interval=0.3)
    assert j["state"] == "succeeded", j.get("error")


def _query(prom: str, expr: str) -> list:
    body = requests.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


def test_every_target_is_scraped(monitored):
    def all_up():
        active = requests.get(f"{monitored['prom']}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        return {t["labels"]["job"]: t["health"] for t in active}

    health = wait_for(lambda: (h := all_up()) and all(v == "up" for v in h.values()) and h, 30, "every target up")
    assert set(health) == {"gateway", "exporter", "enhance", "segment", "camera", "autoscaler", "janitor", "prometheus"}


@pytest.mark.parametrize("dash", dashboards.DASHBOARDS, ids=lambda d: d.uid)
def test_every_dashboard_panel_has_data(monitored, dash):
    for panel in dash.panels:
        for expr in panel.exprs:
            if panel.gpu:
                # No GPU here: no series at all, rather than zeros that look like an idle GPU.
                assert _query(monitored["prom"], expr) == [], (panel.title, expr)
                continue
            wait_for(
                lambda expr=expr: _query(monitored["prom"], expr),
                30,
                f"data for {dash.uid} / {panel.title}: {expr}",
                interval=0.5,
            )


def test_alert_rules_load_and_evaluate(monitored):
    def evaluated():
        groups = requests.get(f"{monitored['prom']}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return rules if rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules) else None

    rules = wait_for(evaluated, 30, "every rule evaluated once")
    assert len(rules) >= 9
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad, bad
    # Nothing is wrong with this stack: no alert is firing.
    firing = [r["name"] for r in rules if r.get("state") == "firing"]
    assert not firing, firing
