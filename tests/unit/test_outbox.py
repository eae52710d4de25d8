"""The outbox is filled by the state changes themselves (real redis-server): a job's end
once per end state, a batch's end once per run (last item, close or cancel), nothing for
work without a callback_url."""

from __future__ import annotations

from services.contracts import redis_keys
from services.store.batches import BatchStore
from services.store.jobs import JobStore
from services.store.outbox import Outbox
from services.upkeep.batch_feed import Feeder


def _entries(r):
    return [Outbox(r).entry(did) for did in r.zrange(redis_keys.OUTBOX_DUE, 0, -1)]


def _batch(r, n=2, url="https://hooks.example.com/b"):
    batches = BatchStore(JobStore(r, 3600))
    b = batches.create(kind="enhance", owner="k", params={}, task="enhance.photo", callback_url=url)
    for i in range(n):
        batches.add_photo(b, input={"blob": "x", "name": f"{i}.jpg", "sha256": f"{i:064x}", "bytes": 1})
    return batches, b["id"]


def _run_all(batches, bid, state="succeeded"):
    Feeder(batches, lambda t, p: None, window=100).feed(bid)
    for jid in batches.item_ids(bid):
        batches.jobs.begin(jid, max_deliveries=3, worker="w")
        batches.jobs.transition(jid, state, allowed_from=("running",))


def test_a_job_end_is_queued_once_per_end_state_and_only_with_a_callback(redis_client):
    jobs = JobStore(redis_client, 3600)
    plain = jobs.create(kind="enhance", owner="k", params={})
    hooked = jobs.create(kind="enhance", owner="k", params={}, callback_url="https://hooks.example.com/j")
    for j in (plain, hooked):
        jobs.begin(j["id"], max_deliveries=3, worker="w")
        jobs.transition(j["id"], "succeeded", allowed_from=("running",))
        jobs.transition(j["id"], "succeeded", allowed_from=("succeeded",))  # replayed
    got = _entries(redis_client)
    assert [(e["subject"], e["id"], e["state"], e["field"]) for e in got] == [
        ("job", hooked["id"], "succeeded", "callback")
    ]
    assert jobs.get(hooked["id"])["callback"] == {"state": "pending", "attempts": 0}


def test_a_batch_is_announced_when_its_last_item_ends_after_close(redis_client):
    batches, bid = _batch(redis_client)
    batches.close(bid)
    assert _entries(redis_client) == []  # items still to run
    _run_all(batches, bid)
    got = _entries(redis_client)
    assert [(e["subject"], e["id"], e["state"]) for e in got] == [("batch", bid, "ended")]
    batches.close(bid)  # closing again announces nothing more
    assert len(_entries(redis_client)) == 1


def test_an_open_batch_ends_at_close_a_canceled_one_at_cancel_and_a_retry_rearms(redis_client):
    batches, bid = _batch(redis_client)
    _run_all(batches, bid, state="failed")
    assert _entries(redis_client) == []  # still open: more photos may come
    batches.close(bid)
    assert len(_entries(redis_client)) == 1
    redis_client.delete(redis_keys.OUTBOX_DUE)
    batches.retry_failed(bid)
    _run_all(batches, bid)
    assert len(_entries(redis_client)) == 1  # the second end of the batch, announced again

    other, oid = _batch(redis_client)
    redis_client.delete(redis_keys.OUTBOX_DUE)
    other.cancel(oid)
    got = _entries(redis_client)
    assert [(e["subject"], e["id"]) for e in got] == [("batch", oid)]
