"""Handing batch items to the queue, a window at a time, from wherever work happens.

Three places feed a batch: the gateway (items added, resume, retry), the worker that
just ended one of its items (so the window refills at the pace the workers go), and
the reaper every few seconds (nothing is left pending after a crash anywhere: a worker
killed between finishing an item and feeding, a gateway restarted after adding items).

Batch items wait on their queue at the batch priority step (tasks.py), behind every
single photo, and at most ``max_queue_backlog`` of them at a time over all batches (the
limit single uploads meet at their own step): past it items stay ``pending`` in their
batch, which costs Redis nothing more, until the queue drains.

Claiming moves jobs ``pending → queued`` atomically before their messages are sent; a
message that cannot be sent puts its job back. If the process dies in between, the job
sits ``queued`` with no message: once it has waited ``batch_redispatch_seconds`` the
reaper looks for its message on the queue and among the messages workers hold
(kombu's ``unacked`` hash) and sends it again only when it is in neither. Even a
duplicate would be harmless: ``JobStore.begin`` runs a job once whatever number of
messages name it; the search keeps a slow queue from filling with them.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from services.contracts.tasks import ENHANCE_QUEUE, QUEUES, TASK_ROUTES, UNACKED_KEY, queue_for, queue_keys
from services.platform.dispatch import Send
from services.store.batches import BatchStore
from services.store.connection import decoded

log = logging.getLogger("kadr.batches")


class Feeder:
    def __init__(
        self,
        batches: BatchStore,
        send: Send,
        *,
        window: int,
        redispatch_seconds: float = 300.0,
        queue_limit: int = 10**9,
    ):
        self.batches, self.send = batches, send
        self.window, self.redispatch_seconds = window, redispatch_seconds
        self.queue_limit = queue_limit  # batch items waiting on a queue, all batches together

    def _tasks(self, job_ids: list[str]) -> list[tuple[str, dict[str, Any]] | None]:
        p = self.batches.r.pipeline(transaction=False)
        for jid in job_ids:
            p.hmget(self.batches.jobs.job_key(jid), "task", "task_payload")
        return [(t, json.loads(pl)) if t and pl else None for t, pl in p.execute()]

    def _messages(self, job_ids: list[str]) -> set[str]:
        """Which of these jobs have a message on a queue or held by a worker."""
        r = self.batches.r
        blobs = list(decoded(r.hvals(UNACKED_KEY)))
        for q in QUEUES:
            for key in queue_keys(q):
                blobs += decoded(r.lrange(key, 0, -1))
        text = "\n".join(blobs)
        return {j for j in job_ids if j in text}

    def feed(self, batch_id: str) -> int:
        task_name = decoded(self.batches.r.hget(self.batches.key(batch_id), "task"))
        claimed = self.batches.claim(
            batch_id, self.window, self.queue_limit, queue_for(task_name) if task_name in TASK_ROUTES else ENHANCE_QUEUE
        )
        sent = 0
        for jid, task in claimed:
            try:
                if task is None:
                    raise ValueError(f"job {jid} has no task recorded")
                self.send(*task)
                sent += 1
            except Exception as e:  # broker away: the rest go back and wait for the next feed
                log.error(
                    "batch items not sent; back to pending",
                    extra={"batch": batch_id, "count": len(claimed) - sent, "error": str(e)},
                )
                self.batches.unclaim(batch_id, [jid for jid, _ in claimed[sent:]])
                break
        return sent

    def tick(self) -> dict[str, int]:
        """The reaper's round: feed every active batch, resend what was lost in flight,
        keep the records of batches with work in flight from expiring, retire batches
        that ended (their TTL starts then)."""
        stats = {"fed": 0, "resent": 0, "retired": 0, "kept": 0}
        for bid in self.batches.active_ids():
            b = self.batches.get(bid, rate=False)
            if b is None or self.batches.finished(b) or (b["canceled"] and not b["counts"]["running"]):
                if b is not None:
                    self.batches.keep(bid, b["ttl_seconds"])  # the TTL counts from the end
                self.batches.retire(bid)
                stats["retired"] += 1
                continue
            c = b["counts"]
            if c["pending"] + c["queued"] + c["running"] and 0 <= self.batches.ttl_left(bid) < b["ttl_seconds"] / 2:
                self.batches.keep(bid, b["ttl_seconds"])
                stats["kept"] += 1
            stale = self.batches.stale_inflight(bid, self.redispatch_seconds)
            if stale:
                waiting = self._messages(stale)
                for jid, task in zip(stale, self._tasks(stale)):
                    if task is not None and jid not in waiting:
                        self.send(*task)
                        stats["resent"] += 1
                        log.warning("batch item's message was lost; sent again", extra={"batch": bid, "job_id": jid})
                self.batches.touch_inflight(bid, stale)
            stats["fed"] += self.feed(bid)
        return stats
