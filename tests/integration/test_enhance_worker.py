"""The enhance service for real: redis-server + a Celery worker subprocess with
generated GFPGAN / RetinaFace / ParseNet / Real-ESRGAN weights."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from services.media import images
from testbed.photos import astronaut_jpeg, flat_png
from testbed.stack import start_worker, wait_for

pytestmark = pytest.mark.slow


def _finished(store, job_id):
    job = store.get(job_id)
    return job if job and job["state"] in ("succeeded", "failed", "canceled") else None


def test_astronaut_goes_through_the_whole_gfpgan_path(submit):
    submit_job, store, blobs = submit
    job_id = submit_job(
        astronaut_jpeg(), "jpeg", {"quality": "medium", "upscale": 2, "max_faces": 1}, name="astronaut.jpg"
    )
    job = wait_for(lambda: _finished(store, job_id), 300, "the astronaut job to finish")
    assert job["state"] == "succeeded", job["error"]
    res = job["result"]
    # detect → restore → paste back on a 2x background
    assert res["faces_found"] >= 1 and res["faces_restored"] + res["faces_failed"] == 1
    assert (res["width"], res["height"]) == (1024, 1024)
    out = images.decode_bgr(blobs.get_bytes(res["blob"]), max_pixels=10**8)
    assert out.shape == (1024, 1024, 3) and out.dtype == np.uint8
    assert res["cache_hit"] is False and res["timings"]["total_seconds"] > 0


def test_same_input_and_params_is_served_from_cache(submit):
    submit_job, store, blobs = submit
    data = flat_png(80, 60, seed=1)
    first = submit_job(data, "png", {"quality": "fast", "upscale": 2, "max_faces": 1})
    a = wait_for(lambda: _finished(store, first), 120, "first job")
    assert a["state"] == "succeeded" and a["result"]["cache_hit"] is False
    second = submit_job(data, "png", {"quality": "fast", "upscale": 2, "max_faces": 1})
    b = wait_for(lambda: _finished(store, second), 120, "second job")
    assert b["state"] == "succeeded" and b["result"]["cache_hit"] is True
    assert blobs.get_bytes(b["result"]["blob"]) == blobs.get_bytes(a["result"]["blob"])
    # Different parameters are a different result.
    third = submit_job(data, "png", {"quality": "fast", "upscale": 3, "max_faces": 1})
    c = wait_for(lambda: _finished(store, third), 120, "third job")
    assert c["result"]["cache_hit"] is False and c["result"]["width"] == 240


def _running_pid(store, job_id, not_in=()):
    job = store.get(job_id)
    if job and job["state"] == "running" and job["worker"]:
        pid = int(job["worker"].rsplit(":", 1)[1])
        return pid if pid not in not_in else None
    return None


def test_kill_9_mid_task_still_completes_once(submit, enhance_stack):
    submit_job, store, blobs = submit
    proc = enhance_stack[2]
    job_id = submit_job(astronaut_jpeg(), "jpeg", {"quality": "medium", "upscale": 1, "max_faces": 1})
    pid = wait_for(lambda: _running_pid(store, job_id), 120, "the job to start")
    os.kill(pid, signal.SIGKILL)
    job = wait_for(lambda: _finished(store, job_id), 300, "the job to finish after the kill")
    assert job["state"] == "succeeded", job["error"]
    assert job["deliveries"] == 2
    assert blobs.exists(job["result"]["blob"])
    assert proc.alive()
    job_lines = [ln for ln in proc.log_text().splitlines() if job_id in ln]
    succeeded_lines = [ln for ln in job_lines if '"message": "job succeeded"' in ln]
    assert len(succeeded_lines) == 1, job_lines


def test_a_task_that_keeps_killing_its_worker_ends_worker_lost(submit, enhance_stack):
    submit_job, store, _ = submit
    # Slow enough (a GFPGAN face + the x4v3 background) to be caught while running.
    job_id = submit_job(astronaut_jpeg(), "jpeg", {"quality": "medium", "upscale": 1, "max_faces": 1, "weight": 0.3})
    killed: list[int] = []
    # KADR_MAX_DELIVERIES=2 for this worker: two deaths, then the third delivery gives up.
    while len(killed) < 2:
        pid = wait_for(
            lambda: _running_pid(store, job_id, killed) or _finished(store, job_id), 120, "the job to start again"
        )
        assert isinstance(pid, int), f"job ended before it was killed twice: {pid}"
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
    job = wait_for(lambda: _finished(store, job_id), 120, "the job to give up")
    assert job["state"] == "failed" and job["error"]["code"] == "worker_lost"
    assert job["deliveries"] == 3


def test_request_id_reaches_the_worker_log(submit, enhance_stack):
    submit_job, store, _ = submit
    job_id = submit_job(flat_png(seed=3), "png", {"quality": "fast", "upscale": 1, "max_faces": 1})
    wait_for(lambda: _finished(store, job_id), 120, "job")
    rid = f"req-{job_id[:8]}"
    lines = [ln for ln in enhance_stack[2].log_text().splitlines() if rid in ln]
    assert any('"request_id": "' + rid in ln and job_id in ln for ln in lines), lines[:3]


def test_whole_worker_killed_mid_task_completes_on_the_next_worker(submit, enhance_stack):
    """kill -9 of the whole worker (main process and pool): no Celery process is left to
    requeue the message, which Redis would hold for the visibility timeout (an hour).
    The reaper in the next worker sees the job's worker heartbeat gone and resends it.
    Last in this module: it leaves the module's worker dead."""
    env, _, proc, _, base = enhance_stack
    submit_job, store, blobs = submit
    job_id = submit_job(astronaut_jpeg(), "jpeg", {"quality": "medium", "upscale": 1, "max_faces": 1, "weight": 0.45})
    wait_for(lambda: _running_pid(store, job_id), 120, "the job to start")
    proc.signal_group(signal.SIGKILL)
    proc.p.wait(10)
    successor = start_worker("enhance", env, base / "logs", name="enhance-successor")
    try:
        job = wait_for(lambda: _finished(store, job_id), 300, "the orphaned job to finish")
        log = successor.log_text()
    finally:
        successor.stop()
    assert job["state"] == "succeeded", job["error"]
    assert job["deliveries"] == 2 and blobs.exists(job["result"]["blob"])
    assert "orphaned job requeued" in log
