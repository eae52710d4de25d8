"""Orphaned jobs (their worker died with them) are resent once, against a real Redis."""

from __future__ import annotations

import json
import time

import pytest
from kombu import Connection

from services.contracts import redis_keys
from services.platform.dispatch import DispatchError
from services.store.jobs import JobStore
from services.upkeep.reaper import reap_orphans


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
    assert reap_orphans(store, grace_seconds=30, send=lambda t, p: sent.append((t, p)), now=later) == [
        (jid, "requeued")
    ]
    assert sent == [("enhance.photo", {"job_id": jid, "request_id": "r"})]
    job = store.get(jid)
    assert job["state"] == "queued" and job["worker"] == "" and store.running_ids() == []
    # A second pass finds nothing to do; the resent task is delivery 2.
    assert reap_orphans(store, grace_seconds=30, send=lambda t, p: sent.append(t), now=later) == []
    assert store.begin(jid, max_deliveries=3, worker="new:7")[:2] == ("run", 2)


def test_an_orphan_the_broker_does_not_take_waits_for_a_later_round(store):
    jid = _running(store, worker="gone-host:42")

    def broker_away(task, payload):
        raise DispatchError("the broker did not take enhance.photo: connection refused")

    later = time.time() + 60
    assert reap_orphans(store, grace_seconds=30, send=broker_away, now=later) == []
    job = store.get(jid)  # not left queued with no message: running in its dead worker again
    assert job["state"] == "running" and job["worker"] == "gone-host:42" and store.running_ids() == [jid]
    # The next round past the grace period (counted again from the failed try) sends it.
    sent = []
    assert reap_orphans(store, grace_seconds=30, send=lambda t, p: sent.append(t), now=time.time() + 5) == []
    assert reap_orphans(store, grace_seconds=30, send=lambda t, p: sent.append(t), now=time.time() + 60) == [
        (jid, "requeued")
    ]
    assert sent == ["enhance.photo"] and store.get(jid)["state"] == "queued"


def test_live_or_recent_workers_are_left_alone(store, redis_client):
    alive = _running(store, worker="live:1")
    redis_client.set(redis_keys.worker("live:1"), "{}", ex=30)
    fresh = _running(store, worker="starting:2")
    assert reap_orphans(store, grace_seconds=30, send=lambda t, p: pytest.fail("sent")) == []
    assert {alive, fresh} == set(redis_client.zrange(redis_keys.RUNNING, 0, -1))
    # A duplicate delivery of a job that a live worker is running is dropped, not run twice.
    assert store.begin(alive, max_deliveries=3, worker="other:3")[:2] == ("busy", 0)


def test_an_orphan_with_nothing_to_resend_fails_clearly(store):
    jid = _running(store, worker="gone:1", task=False)
    assert reap_orphans(store, grace_seconds=1, send=lambda t, p: None, now=time.time() + 5) == [(jid, "failed")]
    assert store.get(jid)["error"]["code"] == "worker_lost"


def _strand(redis_server, app, store, *, started: bool = False, priority: int = 0) -> str:
    """A message a worker received and then lost with its connection while Redis was
    away: delivered (in kombu's ``unacked`` hash) and never put back."""
    job = store.create(kind="enhance", owner="o", params={})
    store.set_task(job["id"], "enhance.photo", {"job_id": job["id"], "request_id": "r"})
    app.send_task("enhance.photo", args=[{"job_id": job["id"], "request_id": "r"}], queue="enhance", priority=priority)
    conn = Connection(redis_server, transport="services.platform.broker:Transport")
    q = conn.SimpleQueue("enhance")
    q.get(timeout=5)
    if started:
        assert store.begin(job["id"], max_deliveries=3, worker="live:1")[0] == "run"
    conn.default_channel.do_restore = False  # the restore that failed with the connection
    conn.release()
    return job["id"]


def test_a_message_stranded_by_a_connection_loss_goes_back_on_its_queue(redis_server, redis_client, store):
    from services.contracts.settings import Settings
    from services.contracts.tasks import UNACKED_KEY
    from services.platform.celery_app import create_celery
    from services.upkeep.stranded import job_id_of, restore_stranded

    app = create_celery(Settings(redis_url=redis_server))
    lost = _strand(redis_server, app, store)
    running = _strand(redis_server, app, store, started=True)
    assert redis_client.hlen(UNACKED_KEY) == 2 and redis_client.llen("enhance") == 0
    # Freshly delivered: a worker may be about to begin it.
    assert restore_stranded(store, older_than=60) == []
    assert restore_stranded(store, older_than=60, now=time.time() + 61) == [lost]
    # Back at the consuming end of its queue, marked redelivered; the running job's
    # message stays with the worker that will ack it.
    back = json.loads(redis_client.lindex("enhance", -1))
    assert job_id_of(back) == lost and back["headers"]["redelivered"] is True
    assert redis_client.llen("enhance") == 1 and redis_client.hlen(UNACKED_KEY) == 1
    assert job_id_of(json.loads(redis_client.hget(UNACKED_KEY, redis_client.hkeys(UNACKED_KEY)[0]))[0]) == running
    assert restore_stranded(store, older_than=60, now=time.time() + 61) == []
    # A consumer gets it as a normal task message; its job starts once.
    with Connection(redis_server, transport="services.platform.broker:Transport") as conn:
        msg = conn.SimpleQueue("enhance").get(timeout=5)
        assert msg.headers["task"] == "enhance.photo" and msg.delivery_info.get("redelivered") is True
        msg.ack()
    assert store.begin(lost, max_deliveries=3, worker="w:2")[:2] == ("run", 1)


def test_a_stranded_batch_item_goes_back_behind_single_work(redis_server, redis_client, store):
    """Restored at its own priority step, as kombu restores: a batch item lost with a
    connection must not come back ahead of the single photos waiting."""
    from services.contracts.settings import Settings
    from services.contracts.tasks import BATCH, queue_key
    from services.platform.celery_app import create_celery
    from services.upkeep.stranded import job_id_of, restore_stranded

    app = create_celery(Settings(redis_url=redis_server))
    lost = _strand(redis_server, app, store, priority=BATCH)
    assert restore_stranded(store, older_than=60, now=time.time() + 61) == [lost]
    assert redis_client.llen("enhance") == 0
    assert job_id_of(json.loads(redis_client.lindex(queue_key("enhance", BATCH), -1))) == lost
