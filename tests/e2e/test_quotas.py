"""Per-key quotas and Redis's high-water mark through the real gateway and nginx, on a
Redis of this module's own (its maxmemory is lowered in a test). No worker runs: every
item stays pending or queued, which is what fills a key's quota and the job store."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
import redis as redis_lib
import requests

from services.store.jobs import JobStore
from testbed.photos import flat_png
from testbed.stack import gateway_behind_nginx, kadr_env, start_redis
from tests.e2e.conftest import create_key

pytestmark = pytest.mark.slow

CAMERA_TOKEN = "quota-camera-token-0123456789"
QUOTAS = {
    "KADR_MAX_OPEN_BATCHES_PER_KEY": "3",
    "KADR_MAX_BATCH_ITEMS": "40",
    "KADR_MAX_ITEMS_IN_FLIGHT_PER_KEY": "60",
    "KADR_MAX_RESULT_SETS_PER_VIDEO": "3",
    "KADR_CAMERA_MAX_EVENT_FIELDS_BYTES": "2048",
}


@pytest.fixture(scope="module")
def redis_own(tmp_path_factory):
    proc, url = start_redis(tmp_path_factory.mktemp("quota-redis"))
    r = redis_lib.Redis.from_url(url, decode_responses=True)
    yield url, r
    r.close()
    proc.stop()


def _env(models_dir, base, redis_url: str, **extra) -> dict:
    return kadr_env(
        redis_url=redis_url,
        storage_dir=base / "blobs",
        models_dir=models_dir,
        KADR_REQUIRED_QUEUES="[]",
        KADR_ARCHIVE_MAX_ENTRIES="5000",
        **extra,
    )


@pytest.fixture(scope="module")
def gw(models_dir, tmp_path_factory, redis_own):
    """A gateway with small quotas."""
    base = tmp_path_factory.mktemp("quotas")
    env = _env(
        models_dir,
        base,
        redis_own[0],
        **QUOTAS,
        KADR_CAMERAS=json.dumps([{"id": "gate", "auth": "token", "secret": CAMERA_TOKEN}]),
    )
    with gateway_behind_nginx(env, base / "logs", rate="1000r/s", burst=1000) as (url, gurl):
        yield {"url": url, "gateway_url": gurl, "env": env, "redis": redis_own[1]}


def _session(gw, name: str) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {create_key(gw['env'], name)}"
    s.base = gw["url"]
    return s


def _zip(n: int, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for i in range(n):
            zf.writestr(f"p{i:05d}.png", flat_png(8, 8, seed=seed * 100_000 + i))
    return buf.getvalue()


def _error(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == code, err
    return err


def _paused_batch(s, **spec) -> str:
    r = s.post(f"{s.base}/api/v1/batches", json={"params": {"quality": "fast", "upscale": 1}, **spec})
    assert r.status_code == 201, r.text
    bid = r.json()["id"]
    s.post(f"{s.base}/api/v1/batches/{bid}/pause").raise_for_status()
    return bid


def test_each_per_key_quota_answers_with_the_code_naming_it(gw):
    alice, bob = _session(gw, "q-alice"), _session(gw, "q-bob")
    url = gw["url"]
    # Items per batch (40: photos x variants). An archive that passes it goes in up to the
    # limit; the answer says where it stopped, and sending it again adds nothing twice.
    b1 = _paused_batch(alice, variants=[{"name": "a", "params": {}}, {"name": "b", "params": {}}])
    archive = _zip(25)
    r = alice.post(f"{url}/api/v1/batches/{b1}/items", files=[("files", ("all.zip", archive))])
    assert r.status_code == 202, r.text
    body = r.json()
    assert len(body["accepted"]) == 40 and body["stopped"]["code"] == "too_many_items"
    err = _error(
        alice.post(f"{url}/api/v1/batches/{b1}/items", files=[("files", ("x.png", flat_png(seed=99)))]),
        413,
        "too_many_items",
    )
    assert "KADR_MAX_BATCH_ITEMS" in err["message"] and err["details"] == {"items": 40, "limit": 40}
    # Items in flight per key (60, singles and batch items together): 40 so far.
    b2 = _paused_batch(alice)
    r = alice.post(f"{url}/api/v1/batches/{b2}/items", files=[("files", ("more.zip", _zip(30, seed=1)))])
    assert r.status_code == 202 and len(r.json()["accepted"]) == 20, r.text
    assert r.json()["stopped"]["code"] == "too_many_in_flight"
    err = _error(
        alice.post(f"{url}/api/v1/enhance", files={"file": ("s.png", flat_png(seed=5))}), 429, "too_many_in_flight"
    )
    assert err["details"] == {"in_flight": 60, "limit": 60}
    # Open batches per key (3).
    _paused_batch(alice)
    r = alice.post(f"{url}/api/v1/batches", json={"params": {}})
    err = _error(r, 429, "too_many_open_batches")
    assert r.headers["Retry-After"] and "KADR_MAX_OPEN_BATCHES_PER_KEY" in err["message"]
    # Another key is not held back by alice's quotas.
    assert bob.post(f"{url}/api/v1/batches", json={"params": {}}).status_code == 201
    assert bob.post(f"{url}/api/v1/enhance", files={"file": ("s.png", flat_png(seed=6))}).status_code == 202
    # Ending work frees the quota: canceled items are no longer in flight, a canceled
    # batch is no longer open.
    alice.post(f"{url}/api/v1/batches/{b2}/cancel").raise_for_status()
    assert alice.post(f"{url}/api/v1/enhance", files={"file": ("s.png", flat_png(seed=5))}).status_code == 202
    assert alice.post(f"{url}/api/v1/batches", json={"params": {}}).status_code == 201


def test_result_sets_per_video_and_camera_event_fields_are_bounded(gw):
    carol = _session(gw, "q-carol")
    url = gw["url"]
    # A segmented video with its raw set and two stabilized ones, as the worker leaves it.
    store = JobStore(gw["redis"], 3600)
    owner_id = _owner_of(gw, carol)
    video = store.create(kind="segment", owner=owner_id, params={}, input={})
    gw["redis"].hset(store.job_key(video["id"]), "state", "succeeded")
    for _ in range(3):
        child = store.create(kind="stabilize", owner=owner_id, params={"video_id": video["id"]}, parent_id=video["id"])
        gw["redis"].hset(store.job_key(child["id"]), "state", "succeeded")
    err = _error(
        carol.post(f"{url}/api/v1/videos/{video['id']}/stabilize", json={"method": "exponential"}),
        409,
        "too_many_result_sets",
    )
    assert err["details"] == {"result_sets": 3, "limit": 3}
    # A camera event's own fields (2 KiB here): images belong in files.
    ok = requests.post(
        f"{url}/api/v1/camera/gate/events",
        params={"token": CAMERA_TOKEN},
        json={"plate": "A123BC", "note": "x" * 500},
        timeout=10,
    )
    assert ok.status_code == 202, ok.text
    big = requests.post(
        f"{url}/api/v1/camera/gate/events",
        params={"token": CAMERA_TOKEN},
        json={"plate": "A123BC", "note": "x" * 4000},
        timeout=10,
    )
    assert "KADR_CAMERA_MAX_EVENT_FIELDS_BYTES" in _error(big, 413, "event_too_large")["message"]


def _owner_of(gw, s) -> str:
    """The owner id the gateway files a key's jobs under: read back from a job it made."""
    r = s.post(f"{gw['url']}/api/v1/batches", json={"params": {}})
    assert r.status_code == 201, r.text
    owner = gw["redis"].hget(f"kadr:batch:{r.json()['id']}", "owner")
    s.delete(f"{gw['url']}/api/v1/batches/{r.json()['id']}").raise_for_status()
    return owner


@pytest.fixture()
def gw_default(models_dir, tmp_path, redis_own):
    """A gateway with the default quotas, on the same Redis, reading Redis's memory at
    every check (the mark leaves only ~200 KB here, ~40 photos' records)."""
    env = _env(models_dir, tmp_path, redis_own[0], KADR_REDIS_MEMORY_CHECK_SECONDS="0")
    with gateway_behind_nginx(env, tmp_path / "logs", rate="1000r/s", burst=1000) as (url, gurl):
        yield {"url": url, "gateway_url": gurl, "env": env, "redis": redis_own[1]}


def test_past_redis_high_water_new_work_is_507_while_reads_cancels_and_deletes_work(gw_default):
    """Redis at a small maxmemory: photos go in until the mark, then creates and uploads
    answer 507 storage_full (never a 500); the batch can still be read, canceled and
    deleted, and deleting it brings uploads back."""
    gw = gw_default
    r = gw["redis"]
    dave = _session(gw, "q-dave")
    url = gw["url"]
    used = int(r.info("memory")["used_memory"])
    room = 2**20
    r.config_set("maxmemory", str(used + room))  # 1 MiB over what is there: ~600 photos
    try:
        bid = _paused_batch(dave)
        full, added = None, 0
        for i in range(20):
            resp = dave.post(
                f"{url}/api/v1/batches/{bid}/items", files=[("files", (f"part{i}.zip", _zip(200, seed=10 + i)))]
            )
            if resp.status_code == 507:
                full = resp
                break
            assert resp.status_code == 202, resp.text
            added += len(resp.json()["accepted"])
            if resp.json().get("stopped"):
                # The mark was reached inside this archive: what came before is in.
                assert resp.json()["stopped"]["code"] == "storage_full"
                assert len(resp.json()["accepted"]) < 200
                full = dave.post(f"{url}/api/v1/batches/{bid}/items", files=[("files", ("late.png", flat_png(seed=3)))])
                break
        assert full is not None, f"{added} items went in and Redis never reached its mark"
        err = _error(full, 507, "storage_full")
        assert full.headers["Retry-After"] and err["details"]["maxmemory_bytes"] == used + room
        assert added > 100, added  # photos went in until the mark
        assert _error(
            dave.post(f"{url}/api/v1/enhance", files={"file": ("s.png", flat_png(seed=1))}), 507, "storage_full"
        )
        assert _error(dave.post(f"{url}/api/v1/batches", json={"params": {}}), 507, "storage_full")
        # Reads, cancels and deletes still work.
        listed = dave.get(f"{url}/api/v1/batches").json()["batches"]
        got = dave.get(f"{url}/api/v1/batches/{bid}", params={"limit": 0})
        assert listed and got.status_code == 200 and got.json()["total"] == added  # every answer was true
        assert dave.post(f"{url}/api/v1/batches/{bid}/cancel").status_code == 200
        for b in listed:
            assert dave.delete(f"{url}/api/v1/batches/{b['id']}").status_code == 200
        again = dave.post(f"{url}/api/v1/batches", json={"params": {}})
        assert again.status_code == 201, again.text
        metrics = requests.get(f"{gw['gateway_url']}/metrics", timeout=10).text
        assert 'kadr_gateway_rejections_total{reason="storage_full"}' in metrics
    finally:
        r.config_set("maxmemory", "512mb")
