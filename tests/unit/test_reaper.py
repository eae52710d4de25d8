"""Orphaned jobs (their worker died with them) are resent once, against a real Redis."""
from __future__ import annotations

import time

import pytest

from services.common.jobs import RUNNING_KEY, WORKER_KEY_PREFIX, JobStore
from services.common.reaper import reap_orphans


@pytest.fixture()
def store(redis_client):
    return JobStore(redis_client, ttl_seconds=3600)


def _running(store, worker="host:1", task=True):
    job = store.create(kind="enhance", owner="o", params={})
    if task:
        store.set_task(job["id"], "enhance.photo", {"job_id": job["id"], "request_id": "r"})
    assert store.begin(job["id"], max_deliveries=3, worker=worker)[:2] == ("run", 1)
    return job["id"]


def test_running_index_follows_transitions(store, redis_client):
    jid = _running(store)
    assert store.running_ids() == [jid]
    store.transition(jid, "succeeded", allowed_from=("running",))
    assert store.running_ids() == []


def test_orphan_is_requeued_once_and_counted_again(store, redis_client):
    jid = _running(store, worker="gone-host:42")
    sent = []
    later = time.time() + 60
    assert reap_orphans(store, grace_seconds=30, send=lambda t, p: sent.append((t, p)), now=later) == \
        [(jid, "requeued")]
    assert sent == [("enhance.photo", {"job_id": jid, "request_id": "r"})]
    job = store.get(jid)
    assert job["state"] == "queued" and job["worker"] == "" and store.running_ids() == []
    # A second pass finds nothing to do; the resent task is delivery 2.
    assert reap_orphans(store, grace_seconds=30, send=lambda t, p: sent.append(t), now=later) == []
    assert store.begin(jid, max_deliveries=3, worker="new:7")[:2] == ("run", 2)


def test_live_or_recent_workers_are_left_alone(store, redis_client):
    alive = _running(store, worker="live:1")
    redis_client.set(WORKER_KEY_PREFIX + "live:1", "{}", ex=30)
    fresh = _running(store, worker="starting:2")
    assert reap_orphans(store, grace_seconds=30, send=lambda t, p: pytest.fail("sent")) == []
    assert {alive, fresh} == set(redis_client.zrange(RUNNING_KEY, 0, -1))
    # A duplicate delivery of a job that a live worker is running is dropped, not run twice.
    assert store.begin(alive, max_deliveries=3, worker="other:3")[:2] == ("busy", 0)


def test_an_orphan_with_nothing_to_resend_fails_clearly(store):
    jid = _running(store, worker="gone:1", task=False)
    assert reap_orphans(store, grace_seconds=1, send=lambda t, p: None, now=time.time() + 5) == [(jid, "failed")]
    assert store.get(jid)["error"]["code"] == "worker_lost"
