"""Retention: TTL and disk budget over real batch folders and a real redis-server."""
from __future__ import annotations

from services.common import retention
from services.common.batch_feed import Feeder
from services.common.batches import BatchStore
from services.common.jobs import JobStore
from services.common.retention import Usage, plan


def test_plan_ttl_then_oldest_finished_first_never_active():
    now = 1000.0
    us = [Usage("live", 500, True, None, 10.0),          # expired TTL but running: kept
          Usage("old", 300, False, 100.0, 5000.0),
          Usage("older", 300, False, 50.0, 5000.0),
          Usage("new", 300, False, 900.0, 5000.0),
          Usage("expired", 10, False, 20.0, 999.0),
          Usage("orphan", 10, False, None, None)]
    got = plan(us, budget=1200, now=now)
    assert got == [("expired", "ttl"), ("orphan", "record_gone"), ("older", "disk_budget")]
    assert plan(us, budget=0, now=now) == [("expired", "ttl"), ("orphan", "record_gone")]
    # Only running work left over budget: nothing more is removed.
    assert plan([Usage("live", 5000, True, None, 9e9)], budget=100, now=now) == []


def test_sweep_removes_files_and_records_keeps_running_and_hidden(redis_client, tmp_path):
    batches = BatchStore(JobStore(redis_client, 3600))
    sent = []
    feeder = Feeder(batches, lambda t, p: sent.append(p), window=10)

    def batch(n_bytes: int, finish: bool) -> str:
        b = batches.create(kind="enhance", owner="k", params={}, task="enhance.photo")
        batches.add_photo(b, input={"blob": "x", "name": "a.jpg", "sha256": b["id"] * 2, "bytes": n_bytes})
        d = tmp_path / "batches" / b["id"] / "inputs"
        d.mkdir(parents=True)
        (d / "photo").write_bytes(b"x" * n_bytes)
        (d / ".nfs0001").write_bytes(b"x" * 10_000)  # hidden: not counted, not the trigger
        if finish:
            batches.close(b["id"])
            feeder.feed(b["id"])
            jid = batches.item_ids(b["id"])[0]
            batches.jobs.begin(jid, max_deliveries=3, worker="w")
            batches.jobs.transition(jid, "succeeded", allowed_from=("running",))
        return b["id"]

    first, second, running = batch(4000, True), batch(4000, True), batch(4000, False)
    (tmp_path / "batches" / ".trash").mkdir()
    removed = retention.sweep(batches, tmp_path, budget=9000)
    assert [(b, why) for b, why, _ in removed] == [(first, "disk_budget")]
    assert not (tmp_path / "batches" / first).exists() and batches.get(first) is None
    assert (tmp_path / "batches" / second).exists() and (tmp_path / "batches" / running).exists()
    assert (tmp_path / "batches" / ".trash").exists()
    removed = retention.sweep(batches, tmp_path, budget=1000)  # only the running one would be left
    assert [b for b, _, _ in removed] == [second] and batches.get(running) is not None


def test_ttl_counts_from_the_end_of_the_work(redis_client, tmp_path):
    """A batch that ran longer than its TTL is kept its TTL after its last item ended."""
    batches = BatchStore(JobStore(redis_client, 3600))
    b = batches.create(kind="enhance", owner="k", params={}, task="enhance.photo", ttl_seconds=60)
    batches.add_photo(b, input={"blob": "x", "name": "a.jpg", "sha256": "ab" * 32, "bytes": 1})
    (tmp_path / "batches" / b["id"]).mkdir(parents=True)
    batches.close(b["id"])
    Feeder(batches, lambda t, p: None, window=1).feed(b["id"])
    jid = batches.item_ids(b["id"])[0]
    batches.jobs.begin(jid, max_deliveries=3, worker="w")
    batches.jobs.transition(jid, "succeeded", allowed_from=("running",))
    ended = batches.last_end(b["id"])
    # Created 100 s before the end: by creation time the TTL has long passed.
    redis_client.hset(batches.key(b["id"]), mapping={"created_at": str(ended - 100),
                                                     "closed_at": str(ended - 100)})
    assert retention.sweep(batches, tmp_path, budget=0, now=ended + 59) == []
    assert [(bid, why) for bid, why, _ in retention.sweep(batches, tmp_path, budget=0, now=ended + 61)] \
        == [(b["id"], "ttl")]
