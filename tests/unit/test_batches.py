"""Batch store and feeder against a real redis-server: windows, dedupe, pause, cancel,
retry, crash recovery of the feeding, counts and progress."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from services.contracts import redis_keys
from services.store.batch_records import batch_state, progress_of
from services.store.batches import BatchClosed, BatchStore
from services.store.jobs import JobStore
from services.upkeep.batch_feed import Feeder


@pytest.fixture()
def batches(redis_client):
    return BatchStore(JobStore(redis_client, ttl_seconds=3600))


class Sent(list):
    def __call__(self, task, payload):
        self.append((task, payload["job_id"]))


def _photo(i: int, name: str | None = None) -> dict:
    return {"blob": f"b/{i}", "name": name or f"{i}.jpg", "sha256": f"{i:064x}", "bytes": 100}


def _finish(store: JobStore, jid: str, state: str = "succeeded") -> None:
    assert store.begin(jid, max_deliveries=3, worker="w")[0] == "run"
    store.transition(jid, state, allowed_from=("running",), result={"format": "png"})


def test_items_go_out_a_window_at_a_time_and_finishing_ones_pull_more(batches):
    b = batches.create(kind="enhance", owner="k", params={"q": 1}, task="enhance.photo")
    for i in range(10):
        batches.add_photo(batches.get(b["id"]), input=_photo(i))
    sent = Sent()
    feeder = Feeder(batches, sent, window=3)
    assert feeder.feed(b["id"]) == 3 and feeder.feed(b["id"]) == 0  # the window is full
    assert [j for _, j in sent] == batches.item_ids(b["id"])[:3]  # upload order
    got = batches.get(b["id"])
    assert got["counts"]["queued"] == 3 and got["counts"]["pending"] == 7 and got["state"] == "queued"
    _finish(batches.jobs, sent[0][1])
    assert feeder.feed(b["id"]) == 1
    assert batches.get(b["id"])["counts"]["succeeded"] == 1


def test_same_upload_twice_is_one_item_and_same_content_is_skipped(batches):
    b = batches.create(
        kind="enhance",
        owner="k",
        params={},
        task="enhance.photo",
        variants=[{"name": "fast", "params": {"quality": "fast"}}, {"name": "high", "params": {"quality": "high"}}],
    )
    first, existing = batches.add_photo(b, input=_photo(1, "a.jpg"))
    assert not existing and [j["variant"] for j in first] == ["fast", "high"]
    again, existing = batches.add_photo(b, input=_photo(1, "a.jpg"))  # a retried upload
    assert existing and [j["id"] for j in again] == [j["id"] for j in first]
    copy, existing = batches.add_photo(b, input=_photo(1, "copy of a.jpg"))  # same pixels, other name
    assert not existing and [j["state"] for j in copy] == ["skipped", "skipped"]
    assert [j["duplicate_of"] for j in copy] == [j["id"] for j in first]
    got = batches.get(b["id"])
    assert got["total"] == 4 and got["photos"] == 2 and got["counts"]["skipped"] == 2
    assert batches.jobs.get(first[1]["id"])["params"] == {"quality": "high"}


def test_a_retried_upload_racing_the_first_still_gets_its_item_ids(batches):
    b = batches.create(kind="enhance", owner="k", params={}, task="enhance.photo")
    photo = _photo(7, "race.jpg")
    # The first request has claimed the name but not yet written its jobs.
    batches.r.hset(batches.key(b["id"]) + ":names", "race.jpg\0" + photo["sha256"], '["j-1"]')
    jobs, existing = batches.add_photo(b, input=photo)
    assert existing and [(j["id"], j["state"]) for j in jobs] == [("j-1", "pending")]


def test_closed_batch_refuses_photos_and_ends_at_exactly_100_percent(batches):
    b = batches.create(kind="enhance", owner="k", params={}, task="enhance.photo")
    for i in range(3):
        batches.add_photo(b, input=_photo(i))
    batches.close(b["id"])
    with pytest.raises(BatchClosed):
        batches.add_photo(b, input=_photo(9))
    sent = Sent()
    Feeder(batches, sent, window=10).feed(b["id"])
    for n, (_, jid) in enumerate(sent):
        got = batches.get(b["id"])
        assert got["progress"] < 1.0 and got["state"] in ("queued", "running")
        _finish(batches.jobs, jid, "failed" if n == 1 else "succeeded")
    got = batches.get(b["id"])
    assert got["progress"] == 1.0 and got["state"] == "partial" and batches.finished(got)
    assert got["throughput_per_s"] is not None and got["eta_seconds"] == 0.0


def test_pause_stops_new_starts_even_for_items_already_on_the_queue(batches):
    b = batches.create(kind="enhance", owner="k", params={}, task="enhance.photo")
    for i in range(4):
        batches.add_photo(b, input=_photo(i))
    sent = Sent()
    feeder = Feeder(batches, sent, window=2)
    feeder.feed(b["id"])
    batches.set_paused(b["id"], True)
    assert feeder.feed(b["id"]) == 0
    verdict, *_ = batches.jobs.begin(sent[0][1], max_deliveries=3, worker="w")
    assert verdict == "paused"  # its message arrived after the pause: back to pending
    got = batches.get(b["id"])
    assert got["state"] == "paused" and got["counts"]["pending"] == 3 and got["counts"]["queued"] == 1
    batches.set_paused(b["id"], False)
    assert feeder.feed(b["id"]) == 1
    assert sent[-1][1] == sent[0][1]  # the returned item goes first


def test_cancel_ends_every_active_item_and_retry_reruns_only_failures(batches):
    b = batches.create(kind="enhance", owner="k", params={}, task="enhance.photo")
    for i in range(5):
        batches.add_photo(b, input=_photo(i))
    batches.close(b["id"])
    sent = Sent()
    feeder = Feeder(batches, sent, window=2)
    feeder.feed(b["id"])
    _finish(batches.jobs, sent[0][1], "failed")
    assert batches.jobs.begin(sent[1][1], max_deliveries=3, worker="w")[0] == "run"  # running
    assert batches.retry_failed(b["id"]) == 1
    assert batches.jobs.get(sent[0][1])["state"] == "pending"
    # 3 never started + the retried one + the running one (its worker stops at its next tile)
    assert batches.cancel(b["id"]) == 5
    got = batches.get(b["id"])
    assert got["counts"]["canceled"] == 5 and got["counts"]["running"] == 0 and got["state"] == "canceled"
    assert batches.jobs.get(sent[1][1])["state"] == "canceled"
    assert feeder.feed(b["id"]) == 0
    # The worker finishing after all cannot bring it back.
    assert not batches.jobs.transition(sent[1][1], "succeeded", allowed_from=("queued", "running")).moved
    assert batches.get(b["id"])["state"] == "canceled"


def test_reaper_round_resends_items_lost_between_claim_and_send(batches, redis_client):
    b = batches.create(kind="enhance", owner="k", params={}, task="enhance.photo")
    batches.add_photo(b, input=_photo(1))
    batches.close(b["id"])
    # Claimed, then the process died before sending.
    lost = [jid for jid, _ in batches.claim(b["id"], 5)]
    assert len(lost) == 1
    sent = Sent()
    feeder = Feeder(batches, sent, window=5, redispatch_seconds=0.0)
    stats = feeder.tick()
    assert stats["resent"] == 1 and sent == [("enhance.photo", lost[0])]
    _finish(batches.jobs, lost[0])
    assert feeder.tick()["retired"] == 1 and b["id"] not in batches.active_ids()


def test_a_failed_send_puts_items_back(batches):
    b = batches.create(kind="enhance", owner="k", params={}, task="enhance.photo")
    batches.add_photo(b, input=_photo(1))

    def broken(task, payload):
        raise ConnectionError("broker down")

    assert Feeder(batches, broken, window=4).feed(b["id"]) == 0
    got = batches.get(b["id"])
    assert got["counts"]["pending"] == 1 and got["counts"]["queued"] == 0
    assert json.loads(batches.r.hget(batches.jobs.job_key(batches.item_ids(b["id"])[0]), "task_payload"))


@hsettings(max_examples=300, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 10**6))
def test_progress_is_100_percent_only_when_everything_ended(done, total):
    done = min(done, total)
    p = progress_of(done, total)
    assert 0.0 <= p <= 1.0 and (p == 1.0) == (done == total)


def test_states_of_a_batch():
    def b(**counts):
        c = dict.fromkeys(("pending", "queued", "running", "succeeded", "failed", "skipped", "canceled"), 0)
        c.update(counts)
        return {"counts": c, "total": sum(c.values()), "open": False, "paused": False, "canceled": False}

    assert batch_state(b(succeeded=3, skipped=1)) == "succeeded"
    assert batch_state(b(failed=2)) == "failed"
    assert batch_state(b(succeeded=1, failed=1)) == "partial"
    assert batch_state(b(pending=2)) == "queued"
    assert batch_state(b(pending=2, succeeded=1)) == "running"
    assert batch_state({**b(pending=1), "paused": True}) == "paused"
    assert batch_state({**b(), "open": True}) == "open"


def _age(redis_client, batches, bid: str, seconds_left: int) -> None:
    """Make every record of the batch expire in ``seconds_left``, as if time had passed."""
    for key in redis_keys.batch_keys(bid):
        redis_client.expire(key, seconds_left)
    for jid in batches.item_ids(bid):
        redis_client.expire(batches.jobs.job_key(jid), seconds_left)


def test_a_run_longer_than_the_ttl_keeps_its_records_and_the_ttl_counts_from_the_end(batches, redis_client):
    b = batches.create(kind="enhance", owner="k", params={}, task="enhance.photo", ttl_seconds=60)
    for i in range(3):
        batches.add_photo(batches.get(b["id"]), input=_photo(i))
    batches.close(b["id"])
    feeder = Feeder(batches, Sent(), window=1)
    feeder.feed(b["id"])
    ids = batches.item_ids(b["id"])
    _finish(batches.jobs, ids[0])
    _age(redis_client, batches, b["id"], 10)  # 50 s into a 60 s TTL, two items still to go
    assert feeder.tick()["kept"] == 1
    assert 50 < batches.ttl_left(b["id"]) <= 60
    assert all(50 < redis_client.ttl(batches.jobs.job_key(j)) <= 60 for j in ids)
    assert 50 < redis_client.ttl(batches.key(b["id"]) + ":items") <= 60
    # Far from expiring: nothing to do.
    assert feeder.tick()["kept"] == 0
    for jid in ids[1:]:
        feeder.feed(b["id"])
        _finish(batches.jobs, jid)
    _age(redis_client, batches, b["id"], 5)
    assert feeder.tick()["retired"] == 1
    # The TTL starts when the work ends: every record has its full 60 s again.
    assert 50 < batches.ttl_left(b["id"]) <= 60
    assert all(50 < redis_client.ttl(batches.jobs.job_key(j)) <= 60 for j in ids)


def test_an_open_batch_with_nothing_in_flight_is_kept_only_its_ttl_after_the_last_upload(batches, redis_client):
    b = batches.create(kind="enhance", owner="k", params={}, task="enhance.photo", ttl_seconds=60)
    feeder = Feeder(batches, Sent(), window=5)
    _age(redis_client, batches, b["id"], 10)
    batches.add_photo(batches.get(b["id"]), input=_photo(1))  # an upload: 60 s again
    assert 50 < batches.ttl_left(b["id"]) <= 60
    feeder.feed(b["id"])
    _finish(batches.jobs, batches.item_ids(b["id"])[0])
    _age(redis_client, batches, b["id"], 10)  # the client went away, the batch stays open
    stats = feeder.tick()
    assert stats["kept"] == 0 and stats["retired"] == 0
    assert 0 < batches.ttl_left(b["id"]) <= 10


def test_feeding_stops_at_the_queue_limit_for_batch_items_over_all_batches(batches, redis_client):
    """Batch items wait at their own priority step, at most ``queue_limit`` of them over
    every batch; past it they stay pending in their batch, and the queue's interactive
    step (single photos) is not counted."""
    from services.contracts.tasks import BATCH, queue_key

    a = batches.create(kind="enhance", owner="a", params={}, task="enhance.photo")
    b = batches.create(kind="enhance", owner="b", params={}, task="enhance.photo")
    for bid in (a["id"], b["id"]):
        for i in range(6):
            batches.add_photo(batches.get(bid), input=_photo(i))
    redis_client.rpush("enhance", *["single"] * 50)  # single photos waiting: not batch items
    sent = Sent()

    def send(task, payload):  # as Celery puts a message at its step
        sent(task, payload)
        redis_client.lpush(queue_key("enhance", payload["priority"]), payload["job_id"])

    feeder = Feeder(batches, send, window=4, queue_limit=5)
    assert feeder.feed(a["id"]) == 4  # its window
    assert feeder.feed(b["id"]) == 1  # the queue's batch step is at 5
    assert redis_client.llen(queue_key("enhance", BATCH)) == 5
    assert batches.get(b["id"])["counts"]["pending"] == 5
    redis_client.rpop(queue_key("enhance", BATCH))  # a worker took one
    assert feeder.feed(b["id"]) == 1 and feeder.feed(a["id"]) == 0


def test_a_keys_load_counts_its_open_batches_and_unended_items(batches):
    store = batches.jobs
    assert batches.owner_load("k") == (0, 0)
    b1 = batches.create(kind="enhance", owner="k", params={}, task="enhance.photo")
    b2 = batches.create(
        kind="enhance",
        owner="k",
        params={},
        task="enhance.photo",
        variants=[{"name": "x", "params": {}}, {"name": "y", "params": {}}],
    )
    batches.create(kind="enhance", owner="other", params={}, task="enhance.photo")
    for i in range(3):
        batches.add_photo(batches.get(b1["id"]), input=_photo(i))
        batches.add_photo(batches.get(b2["id"]), input=_photo(i))
    single = store.create(kind="enhance", owner="k", params={})
    assert batches.owner_load("k") == (2, 3 + 6 + 1)
    sent = Sent()
    Feeder(batches, sent, window=10).feed(b1["id"])
    for _, jid in sent:
        _finish(store, jid)
    assert batches.owner_load("k") == (2, 6 + 1)  # b1 is still open: it may get more photos
    batches.close(b1["id"])
    assert batches.owner_load("k") == (1, 6 + 1)  # closed with nothing left: ended
    _finish(store, single["id"], "failed")
    batches.cancel(b2["id"])
    assert batches.owner_load("k") == (0, 0)
    assert batches.owner_load("other") == (1, 0)
