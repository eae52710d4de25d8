"""The feed window of a batch: pending items handed to the queue a window at a time.

``claim`` moves up to a window of pending items to ``queued`` (never past the queue's
limit for batch items); the feeder (services/upkeep/batch_feed.py) sends them, gives back
what it could not send (``unclaim``), resends what waited too long, and keeps each
batch's records alive while it runs, for each batch on the reaper's list
(``redis_keys.BATCHES_ACTIVE``).
"""

from __future__ import annotations

import json
from typing import Any

from services.contracts import redis_keys
from services.contracts.records import Batch
from services.contracts.tasks import BATCH, ENHANCE_QUEUE, queue_key
from services.store.batch_records import BatchRecords
from services.store.batch_scripts import CLAIM, MOVE
from services.store.connection import decoded
from services.store.jobs import JobStore, now


class BatchWindow(BatchRecords):
    def __init__(self, jobs: JobStore):
        super().__init__(jobs)
        self._claim = self.r.register_script(CLAIM)
        self._move = self.r.register_script(MOVE)

    def active_ids(self) -> list[str]:
        return list(decoded(self.r.smembers(redis_keys.BATCHES_ACTIVE)))

    def claim(
        self, batch_id: str, window: int, queue_limit: int = 10**9, queue: str = ENHANCE_QUEUE
    ) -> list[tuple[str, tuple[str, dict[str, Any]] | None]]:
        """Claimed jobs: (id, (task, payload) as recorded, or None if it has none), at most
        ``window`` of the batch in flight and ``queue_limit`` batch items on ``queue``."""
        flat = self._claim(keys=[self.key(batch_id), queue_key(queue, BATCH)], args=[window, now(), queue_limit])
        return [
            (jid, (task, json.loads(payload)) if task and payload else None)
            for jid, task, payload in zip(flat[::3], flat[1::3], flat[2::3])
        ]

    def unclaim(self, batch_id: str, job_ids: list[str]) -> None:
        """Claimed jobs whose message could not be sent go back to pending."""
        self._moves(batch_id, "pending", ("queued",), job_ids)

    def stale_inflight(self, batch_id: str, older_than: float) -> list[str]:
        """Handed to the queue more than ``older_than`` seconds ago and never started."""
        ids = decoded(self.r.zrangebyscore(redis_keys.batch_inflight(batch_id), "-inf", now() - older_than))
        return [j["id"] for j in self.jobs.get_many(ids) if j and j["state"] == "queued" and not j["deliveries"]]

    def touch_inflight(self, batch_id: str, job_ids: list[str]) -> None:
        """Restart the wait of items just checked or resent, so each is looked at again
        only after another full redispatch interval."""
        if job_ids:
            self.r.zadd(redis_keys.batch_inflight(batch_id), dict.fromkeys(job_ids, now()), xx=True)

    def last_end(self, batch_id: str) -> float | None:
        newest = self.r.lindex(redis_keys.batch_done(batch_id), 0)
        return float(newest) if newest else None

    def finished(self, b: Batch) -> bool:
        return not b["open"] and b["done"] == b["total"]

    def retire(self, batch_id: str) -> None:
        """Off the reaper's list (finished, or gone)."""
        self.r.srem(redis_keys.BATCHES_ACTIVE, batch_id)

    def reactivate(self, batch_id: str) -> None:
        """Back on the reaper's list (items to run again)."""
        self.r.sadd(redis_keys.BATCHES_ACTIVE, batch_id)

    def ttl_left(self, batch_id: str) -> int:
        """Seconds before the batch record expires (negative: no expiry, or gone)."""
        return int(self.r.ttl(self.key(batch_id)))

    def keep(self, batch_id: str, ttl: int) -> None:
        """Every record of the batch expires ``ttl`` seconds from now: the batch, its
        lists and each item's job. The reaper calls this while items are in flight (a
        batch must not expire under its own run) and once more when the batch ends, so
        a TTL counts from the end of the work, not from creation."""
        if ttl <= 0:  # EXPIRE 0 would delete: a batch always has a TTL, this is a guard
            return
        p = self.r.pipeline(transaction=False)
        for key in redis_keys.batch_keys(batch_id):
            p.expire(key, ttl)
        offset = 0
        while ids := self.item_ids(batch_id, offset, 1000):
            for jid in ids:
                p.expire(self.jobs.job_key(jid), ttl)
            p.execute()
            offset += len(ids)
        p.execute()

    def _moves(self, batch_id: str, to: str, allowed: tuple[str, ...], ids: list[str], lost_keep: int = 0) -> int:
        n = 0
        for i in range(0, len(ids), 1000):  # a script blocks Redis while it runs: a thousand at a time
            n += int(
                self._move(
                    keys=[self.key(batch_id)], args=[to, now(), ",".join(allowed), lost_keep, *ids[i : i + 1000]]
                )
            )
        return n
