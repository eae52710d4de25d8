"""Job store against a real redis-server: state machine, batch counters, redelivery cap."""

from __future__ import annotations

import json

import pytest

from services.store.jobs import JobStore


@pytest.fixture()
def store(redis_client):
    return JobStore(redis_client, ttl_seconds=3600)


def test_job_lifecycle_is_json_safe(store, redis_client):
    job = store.create(kind="enhance", owner="k1", params={"upscale": 2}, input={"name": "a.jpg"})
    assert store.get(job["id"])["state"] == "queued"
    verdict, n, _ = store.begin(job["id"], max_deliveries=3, worker="w:1")
    assert (verdict, n) == ("run", 1)
    got = store.get(job["id"])
    assert got["state"] == "running" and got["worker"] == "w:1" and got["started_at"]
    store.set_progress(job["id"], 0.5)
    assert store.get(job["id"])["progress"] == 0.5
    assert store.transition(job["id"], "succeeded", allowed_from=("running",), result={"faces_found": 3}).moved
    done = store.get(job["id"])
    assert done["state"] == "succeeded" and done["progress"] == 1.0 and done["result"] == {"faces_found": 3}
    # Every stored value is a plain string that JSON can carry.
    raw = redis_client.hgetall(store.job_key(job["id"]))
    json.dumps(raw)


def test_begin_moves_to_running_and_answers_with_the_job_in_one_call(store, redis_client):
    """The worker's way in: the delivery count, the move to running (with the batch's
    counters and the event) and the job it runs, from one script."""
    job = store.create(kind="enhance", owner="k1", params={"upscale": 2}, input={"name": "a.jpg"}, batch_id="b1")
    redis_client.hset(store.batch_key("b1"), mapping={"n_queued": 1, "n_running": 0})
    events = redis_client.pubsub(ignore_subscribe_messages=True)
    events.subscribe(store.job_key(job["id"]) + ":events")
    verdict, n, got = store.begin(job["id"], max_deliveries=3, worker="w:9")
    assert (verdict, n) == ("run", 1)
    assert got == store.get(job["id"])
    assert got["state"] == "running" and got["worker"] == "w:9" and got["started_at"] and got["deliveries"] == 1
    assert got["params"] == {"upscale": 2} and got["input"] == {"name": "a.jpg"}
    assert redis_client.hmget(store.batch_key("b1"), "n_queued", "n_running") == ["0", "1"]
    assert job["id"] in redis_client.zrange("kadr:running", 0, -1)
    # get_message answers None for the subscribe confirmation it skips: read until a message.
    msgs = [events.get_message(timeout=1) for _ in range(3)]
    assert [m["data"] for m in msgs if m] == ["running"]
    # Only a job it runs comes back.
    assert store.begin(job["id"], max_deliveries=1, worker="w:9")[::2] == ("exhausted", None)


def test_finished_job_is_never_finished_twice(store):
    job = store.create(kind="enhance", owner="k1", params={})
    store.begin(job["id"], max_deliveries=3, worker="w")
    assert store.transition(job["id"], "succeeded", allowed_from=("running",), result={"n": 1}).moved
    # A redelivered task (worker died after the write) must neither run nor overwrite.
    assert store.begin(job["id"], max_deliveries=3, worker="w2")[:2] == ("skip", 0)
    t = store.transition(job["id"], "failed", allowed_from=("queued", "running"), error={"code": "x"})
    assert not t.moved and t.previous == "succeeded"
    assert store.get(job["id"])["result"] == {"n": 1}


def test_redelivery_cap(store):
    job = store.create(kind="enhance", owner="k1", params={})
    for i in range(1, 4):
        assert store.begin(job["id"], max_deliveries=3, worker="w")[:2] == ("run", i)
    assert store.begin(job["id"], max_deliveries=3, worker="w")[:2] == ("exhausted", 4)


def test_owner_isolation(store):
    job = store.create(kind="enhance", owner="alice", params={})
    assert store.get_owned(job["id"], "alice") is not None
    assert store.get_owned(job["id"], "bob") is None
    assert [j["id"] for j in store.list_owned("alice")] == [job["id"]]
    assert store.list_owned("bob") == []


def test_delete_removes_job(store):
    job = store.create(kind="enhance", owner="a", params={})
    store.delete(job["id"])
    assert store.get(job["id"]) is None
    assert store.begin(job["id"], max_deliveries=3, worker="w")[:2] == ("gone", 0)
