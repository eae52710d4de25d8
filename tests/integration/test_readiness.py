"""Readiness and failure reporting when the weights are not on the machine."""

from __future__ import annotations

import io

import pytest
import redis as redis_lib

from gateway.app import create_app
from gateway.settings import GatewaySettings
from services.store.apikeys import create_key
from testbed.photos import flat_png
from testbed.stack import kadr_env, start_worker, wait_for
from tests.integration.conftest import worker_models

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bare_stack(redis_server, tmp_path_factory):
    base = tmp_path_factory.mktemp("bare")
    url = redis_server.rsplit("/", 1)[0] + "/3"
    env = kadr_env(redis_url=url, storage_dir=base / "blobs", models_dir=base / "no-models")
    env["KADR_CACHE_REDIS_URL"] = redis_server.rsplit("/", 1)[0] + "/4"
    r = redis_lib.Redis.from_url(url, decode_responses=True)
    r.flushdb()
    settings = GatewaySettings(redis_url=url, storage_dir=base / "blobs")
    app = create_app(settings)
    client = app.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json["checks"]["queues"]["enhance"]["workers"] == 0
    proc = start_worker("enhance", env, base / "logs")
    wait_for(
        lambda: worker_models(r).get("gfpgan", {}).get("state") == "missing_weights",
        60,
        "the worker to report missing weights",
    )
    yield client, r
    proc.stop()
    r.close()


def test_readyz_says_missing_weights(bare_stack):
    client, _ = bare_stack
    resp = client.get("/readyz")
    assert resp.status_code == 503
    body = resp.json
    assert body["status"] == "not_ready"
    assert body["checks"]["redis"]["ok"] and body["checks"]["queues"]["enhance"]["workers"] == 1
    gfpgan = body["checks"]["models"]["enhance"]["gfpgan"]
    assert gfpgan["state"] == "missing_weights" and "GFPGANv1.4.pth" in gfpgan["message"]


def test_a_job_fails_clearly_without_weights(bare_stack):
    client, r = bare_stack
    key, _ = create_key(r, "t")
    resp = client.post(
        "/api/v1/enhance",
        headers={"Authorization": f"Bearer {key}"},
        data={"file": (io.BytesIO(flat_png()), "a.png"), "quality": "fast"},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 202, resp.json
    job_id = resp.json["id"]

    def finished():
        j = client.get(f"/api/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"}).json
        return j if j["state"] in ("succeeded", "failed") else None

    job = wait_for(finished, 60, "the job to fail")
    assert job["state"] == "failed" and job["error"]["code"] == "missing_weights"
    assert "kadr models download" in job["error"]["message"]


def test_auth_can_be_disabled_for_local_development_and_says_so(redis_server, caplog, tmp_path):
    settings = GatewaySettings(redis_url=redis_server, auth_disabled=True, storage_dir=tmp_path)
    with caplog.at_level("WARNING"):
        app = create_app(settings)
    assert any("AUTHENTICATION IS DISABLED" in rec.getMessage() for rec in caplog.records)
    assert app.test_client().get("/api/v1/jobs").status_code == 200


def test_backlog_over_the_limit_gets_503_with_retry_after(redis_server, tmp_path):
    """No worker consumes this database's queue: the third photo finds the queue full."""
    url = redis_server.rsplit("/", 1)[0] + "/5"
    r = redis_lib.Redis.from_url(url, decode_responses=True)
    r.flushdb()
    app = create_app(
        GatewaySettings(redis_url=url, storage_dir=tmp_path, max_queue_backlog=2, backlog_retry_after_seconds=17)
    )
    client = app.test_client()
    key, _ = create_key(r, "t")
    auth = {"Authorization": f"Bearer {key}"}

    def post():
        return client.post(
            "/api/v1/enhance",
            headers=auth,
            content_type="multipart/form-data",
            data={"file": (io.BytesIO(flat_png()), "a.png")},
        )

    assert [post().status_code for _ in range(2)] == [202, 202]
    refused = post()
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "17"
    assert refused.json["error"]["code"] == "queue_full"
    # Nothing was half-accepted: two jobs, two queued tasks, no third input blob.
    assert r.llen("enhance") == 2
    assert len(list((tmp_path / "jobs").iterdir())) == 2
    metrics = client.get("/metrics").data.decode()
    assert 'kadr_gateway_rejections_total{reason="queue_full"}' in metrics
    r.close()
