"""Through nginx → gunicorn → Redis → Celery worker, over real HTTP."""

from __future__ import annotations

import concurrent.futures as cf
import io
import json
import zipfile

import pytest
import requests

from testbed.photos import astronaut_jpeg, flat_png
from testbed.stack import start_nginx, wait_for
from tests.e2e.conftest import MAX_REQUEST, MAX_UPLOAD, wait_job

pytestmark = pytest.mark.slow


def _error(resp, status, code):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["request_id"] == resp.headers["X-Request-ID"]
    return body["error"]


def test_every_api_route_needs_a_key(stack):
    url = stack["url"]
    _error(requests.get(f"{url}/api/v1/jobs/abc"), 401, "unauthorized")
    _error(requests.post(f"{url}/api/v1/enhance", files={"file": ("a.png", flat_png())}), 401, "unauthorized")
    _error(requests.get(f"{url}/api/v1/jobs/abc", headers={"Authorization": "Bearer kadr_nope"}), 401, "unauthorized")
    assert requests.get(f"{url}/healthz").status_code == 200


def test_readyz_reports_worker_and_models(stack):
    body = requests.get(stack["url"] + "/readyz").json()
    assert body["checks"]["redis"]["ok"] is True
    assert body["checks"]["queues"]["enhance"]["workers"] >= 1
    assert body["checks"]["models"]["enhance"]["gfpgan"]["state"] == "ready"


def test_ops_status_lists_queues_processes_and_memory(stack, api):
    _error(requests.get(f"{stack['url']}/api/v1/ops"), 401, "unauthorized")
    body = api.get(f"{api.base}/api/v1/ops").json()
    enhance = body["queues"]["enhance"]
    assert enhance["processes"] >= 1 and enhance["required"] is True
    assert enhance["rss_bytes"] > 50 * 2**20  # a pool process with torch loaded
    assert body["queues"]["segment"]["processes"] == 0  # not started in this stack
    proc = next(w for w in body["workers"] if "enhance" in w["queues"])
    assert proc["models"]["gfpgan"]["state"] == "ready" and proc["heartbeat_age_seconds"] < 5
    assert 0 < body["host"]["memory_available_bytes"] <= body["host"]["memory_total_bytes"]
    assert body["redis"]["used_memory_bytes"] > 0
    assert body["readiness"]["status"] == "ready"


def test_photo_round_trip_and_request_id(stack, api):
    rid = "e2e-request-0001"
    resp = api.post(
        f"{api.base}/api/v1/enhance",
        headers={"X-Request-ID": rid},
        files={"file": ("Портрет бабушки.jpg", astronaut_jpeg(), "image/jpeg")},
        data={"quality": "medium", "upscale": "2", "max_faces": "1"},
    )
    assert resp.status_code == 202, resp.text
    assert resp.headers["X-Request-ID"] == rid
    job = resp.json()
    assert resp.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    assert job["state"] == "queued" and job["input"]["name"] == "Портрет бабушки.jpg"
    assert "blob" not in json.dumps(job)  # storage keys are ours, never shown
    done = wait_job(api, job["id"])
    assert done["state"] == "succeeded", done["error"]
    assert done["result"]["faces_found"] >= 1 and done["result"]["cache_hit"] is False
    img = api.get(f"{api.base}{done['links']['result']}")
    assert img.status_code == 200 and img.headers["Content-Type"] == "image/jpeg"
    from PIL import Image

    assert Image.open(io.BytesIO(img.content)).size == (1024, 1024)
    png = api.get(f"{api.base}{done['links']['result']}?format=png")
    assert png.headers["Content-Type"] == "image/png" and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    # The worker logged this job under the id nginx passed along.
    wait_for(
        lambda: any(rid in ln and job["id"] in ln for ln in stack["worker"].log_text().splitlines()),
        10,
        "the worker's log line with the request id",
    )


def test_nginx_generates_a_request_id(stack, api):
    resp = api.get(f"{api.base}/api/v1/jobs/nope")
    assert len(resp.headers["X-Request-ID"]) >= 16
    _error(resp, 404, "not_found")


def test_another_keys_job_is_404_and_delete_removes_files(stack, api, keys):
    resp = api.post(
        f"{api.base}/api/v1/enhance",
        files={"file": ("x.png", flat_png(seed=11))},
        data={"quality": "fast", "upscale": "1", "max_faces": "1"},
    )
    job = resp.json()
    wait_job(api, job["id"])
    bob = {"Authorization": f"Bearer {keys[1]}"}
    _error(requests.get(f"{api.base}/api/v1/jobs/{job['id']}", headers=bob), 404, "not_found")
    _error(requests.get(f"{api.base}/api/v1/jobs/{job['id']}/result", headers=bob), 404, "not_found")
    _error(requests.delete(f"{api.base}/api/v1/jobs/{job['id']}", headers=bob), 404, "not_found")
    jobdir = stack["base"] / "blobs" / "jobs" / job["id"]
    assert jobdir.is_dir()
    d = api.delete(f"{api.base}/api/v1/jobs/{job['id']}")
    assert d.status_code == 200 and d.json()["files_removed"] == 2
    assert not jobdir.exists()
    _error(api.get(f"{api.base}/api/v1/jobs/{job['id']}"), 404, "not_found")


def test_bad_parameters_name_the_allowed_range(api):
    err = _error(
        api.post(f"{api.base}/api/v1/enhance", files={"file": ("a.png", flat_png())}, data={"upscale": "9"}),
        400,
        "invalid_parameters",
    )
    assert "upscale" in err["message"] and "1–4" in err["message"]
    err = _error(
        api.post(f"{api.base}/api/v1/enhance", files={"file": ("a.png", flat_png())}, data={"tile": "100"}),
        400,
        "invalid_parameters",
    )
    assert "256 and 512" in err["message"]


def test_bad_files_are_refused_clearly(api):
    _error(
        api.post(f"{api.base}/api/v1/enhance", files={"file": ("notes.jpg", b"hello, not a photo")}),
        415,
        "unsupported_format",
    )
    _error(api.post(f"{api.base}/api/v1/enhance", files={"file": ("empty.jpg", b"")}), 400, "empty_file")
    truncated = astronaut_jpeg()[:2000]
    # Cut short: refused at upload from its structure, never queued.
    _error(api.post(f"{api.base}/api/v1/enhance", files={"file": ("cut.jpg", truncated)}), 400, "invalid_image")


def test_oversize_uploads_get_413_from_app_and_from_nginx(api):
    # Over the per-file limit but under the body limit: the app answers.
    big = b"\xff\xd8\xff\xe0" + b"\0" * (MAX_UPLOAD + 10)
    _error(api.post(f"{api.base}/api/v1/enhance", files={"file": ("big.jpg", big)}), 413, "file_too_large")
    # Over the body limit: nginx answers, in the same JSON shape, before the app sees it.
    huge = b"\0" * (MAX_REQUEST + 10)
    resp = api.post(f"{api.base}/api/v1/enhance", files={"file": ("huge.jpg", huge)})
    _error(resp, 413, "payload_too_large")
    assert resp.headers.get("Server", "").startswith("nginx")


def test_batch_with_zip_download(api):
    files = [
        ("files", ("a.png", flat_png(seed=21))),
        ("files", ("a.png", flat_png(seed=22))),
        ("files", ("../../etc/b.png", flat_png(seed=23))),
    ]
    resp = api.post(
        f"{api.base}/api/v1/enhance/batch", files=files, data={"quality": "fast", "upscale": "2", "max_faces": "1"}
    )
    assert resp.status_code == 202, resp.text
    batch = resp.json()
    assert batch["total"] == 3 and resp.headers["Location"] == f"/api/v1/batches/{batch['id']}"

    def finished():
        b = api.get(f"{api.base}/api/v1/batches/{batch['id']}").json()
        return b if b["state"] in ("succeeded", "partial", "failed") else None

    b = wait_for(finished, 240, "the batch", interval=0.2)
    assert b["state"] == "succeeded" and b["progress"] == 1.0 and b["counts"]["succeeded"] == 3
    assert {i["name"] for i in b["items"]} == {"a.png", "b.png"}
    z = api.get(f"{api.base}{b['links']['archive']}", stream=True)
    assert z.status_code == 200 and z.headers["Content-Type"] == "application/zip"
    zf = zipfile.ZipFile(io.BytesIO(z.content))
    assert sorted(zf.namelist()) == ["a (2).png", "a.png", "b.png"]
    assert zf.testzip() is None
    from PIL import Image

    assert Image.open(zf.open("b.png")).size == (128, 96)


def test_batch_limits(api):
    files = [("files", (f"{i}.png", flat_png(seed=i))) for i in range(6)]
    _error(api.post(f"{api.base}/api/v1/enhance/batch", files=files), 400, "too_many_files")
    files = [("files", ("ok.png", flat_png())), ("files", ("bad.jpg", b"text"))]
    err = _error(api.post(f"{api.base}/api/v1/enhance/batch", files=files), 400, "invalid_batch")
    assert err["details"][0]["file"] == "bad.jpg"


def test_burst_gets_429_from_nginx(stack, api):
    ngx, url = start_nginx(
        stack["gateway_url"].removeprefix("http://"),
        stack["base"] / "logs-429",
        rate="2r/s",
        burst=2,
        max_body_bytes=MAX_REQUEST,
    )
    try:

        def hit(_):
            return requests.get(f"{url}/api/v1/jobs/none", headers=api.headers, timeout=10)

        with cf.ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(hit, range(30)))
        codes = [r.status_code for r in responses]
        assert codes.count(429) >= 10 and codes.count(404) >= 1, codes
        limited = next(r for r in responses if r.status_code == 429)
        assert limited.json()["error"]["code"] == "rate_limited"
        assert limited.headers["Retry-After"] == "1"
    finally:
        ngx.stop()


def test_openapi_and_docs_are_served(stack):
    spec = requests.get(stack["url"] + "/api/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    for path in (
        "/api/v1/enhance",
        "/api/v1/enhance/batch",
        "/api/v1/jobs/{job_id}",
        "/api/v1/jobs/{job_id}/result",
        "/api/v1/batches/{batch_id}",
        "/api/v1/batches/{batch_id}/archive",
    ):
        assert path in spec["paths"], path
    docs = requests.get(stack["url"] + "/api/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    gz = requests.get(stack["url"] + "/api/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert gz.headers.get("Content-Encoding") == "gzip"


def test_prefork_worker_metrics_sum_the_pool_processes(stack, api):
    """The enhance worker runs tasks in a prefork child; its main process serves what the
    child recorded (multiprocess mode) plus the memory of the whole tree."""
    from testbed.stack import sample, scrape

    resp = api.post(
        f"{api.base}/api/v1/enhance",
        files={"file": ("m.png", flat_png(seed=31))},
        data={"quality": "fast", "upscale": "2", "max_faces": "1"},
    )
    assert resp.status_code == 202, resp.text
    assert wait_job(api, resp.json()["id"])["state"] == "succeeded"
    m = scrape(stack["worker"].metrics_url)
    assert sample(m, "kadr_worker_jobs_total", service="enhance", outcome="succeeded") >= 1
    assert sample(m, "kadr_worker_task_duration_seconds_count", task="enhance.photo") >= 1
    assert sample(m, "kadr_worker_queue_wait_seconds_count", task="enhance.photo") >= 1
    assert sample(m, "kadr_worker_model_load_seconds_count", model="gfpgan") >= 1
    assert sample(m, "kadr_worker_processes", service="enhance") == 2  # main + one child
    child = sample(m, "kadr_worker_process_max_resident_memory_bytes", service="enhance")
    total = sample(m, "kadr_worker_resident_memory_bytes", service="enhance")
    assert 200e6 < child < total  # the child holds the models; the total adds the main process
    assert "kadr_worker_cuda_memory_allocated_bytes" not in m
