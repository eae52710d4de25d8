"""A real enhance worker subprocess against the session's redis-server."""

from __future__ import annotations

import pytest
import redis as redis_lib

from services.enhance.settings import EnhanceSettings
from services.store.jobs import JobStore
from testbed.stack import kadr_env, start_worker, wait_for


def worker_models(r, service="enhance") -> dict:
    from services.store.workers import live_workers

    for w in live_workers(r):
        if w["service"] == service:
            return w["models"]
    return {}


@pytest.fixture(scope="module")
def enhance_stack(redis_server, models_dir, tmp_path_factory):
    """(env, settings, worker proc, log dir): one worker per test module, models warmed."""
    base = tmp_path_factory.mktemp("enhance")
    env = kadr_env(
        redis_url=redis_server,
        storage_dir=base / "blobs",
        models_dir=models_dir,
        KADR_MAX_DELIVERIES="2",
        KADR_REAPER_INTERVAL_SECONDS="1",
        KADR_ORPHAN_GRACE_SECONDS="2",
    )
    settings = EnhanceSettings(
        redis_url=redis_server,
        cache_redis_url=env["KADR_CACHE_REDIS_URL"],
        storage_dir=base / "blobs",
        models_dir=models_dir,
        max_deliveries=2,
    )
    r = redis_lib.Redis.from_url(redis_server, decode_responses=True)
    r.flushall()
    proc = start_worker("enhance", env, base / "logs")
    try:
        wait_for(
            lambda: worker_models(r).get("gfpgan", {}).get("state") == "ready", 180, "the enhance worker to load GFPGAN"
        )
    except TimeoutError:
        print(proc.log_text()[-4000:])
        proc.stop()
        raise
    yield env, settings, proc, r, base
    proc.stop()
    r.close()


@pytest.fixture()
def submit(enhance_stack):
    """Create a job the way the gateway does (blob + job record + task by name)."""
    import hashlib

    from services.contracts.tasks import ENHANCE_PHOTO, EnhancePhotoTask
    from services.platform.celery_app import create_celery
    from services.platform.dispatch import Dispatcher
    from services.store.blobs import open_store

    env, settings, proc, r, _ = enhance_stack
    store = JobStore(r)
    blobs = open_store(settings)
    celery = create_celery(settings)
    send = Dispatcher(celery)  # the producers' own sender

    def _submit(data: bytes, fmt: str, params: dict, name="photo", limits: dict | None = None) -> str:
        from services.contracts.schemas import EnhanceParams
        from services.store.jobs import new_id

        job_id = new_id()
        blobs.put_bytes(f"jobs/{job_id}/input", data)
        inp = {
            "blob": f"jobs/{job_id}/input",
            "name": name,
            "format": fmt,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        store.create(
            kind="enhance",
            owner="test",
            params=EnhanceParams(**params).model_dump(),
            input=inp,
            job_id=job_id,
            request_id=f"req-{job_id[:8]}",
        )
        payload = EnhancePhotoTask(job_id=job_id, request_id=f"req-{job_id[:8]}", **(limits or {})).model_dump()
        store.set_task(job_id, ENHANCE_PHOTO, payload)  # as gateway.dispatch.send does
        send(ENHANCE_PHOTO, payload)
        return job_id

    yield _submit, store, blobs
    celery.close()
