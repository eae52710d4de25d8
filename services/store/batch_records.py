"""Reading a batch: its record with counts, state, progress and rate, and its items.

``BatchRecords`` is the base of the batch store (services/store/batches.py): the batch
hash and its lists are read here, written by ``BatchWindow`` and ``BatchStore``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any, cast

from services.contracts import redis_keys
from services.contracts.records import AnyJob, Batch, RunningItem
from services.store.connection import decoded
from services.store.jobs import STATES, TERMINAL, JobStore, decode_fields


def batch_state(b: dict[str, Any]) -> str:
    c, total = b["counts"], b["total"]
    active = c["pending"] + c["queued"] + c["running"]
    if b["canceled"]:
        return "canceling" if c["queued"] + c["running"] else "canceled"
    if active and b["paused"]:
        return "paused"
    if active:
        return "running" if (c["running"] or total - c["pending"] - c["queued"]) else "queued"
    if b["open"]:
        return "open"
    ok = c["succeeded"] + c["skipped"]
    if total and ok == total:
        return "succeeded"
    return "failed" if ok == 0 else "partial"


def progress_of(done: int, total: int) -> float:
    """Floored to 4 decimals, so 100 % means every item ended (9,999 of 10,000 is 99.99 %)."""
    return math.floor(done / total * 10_000) / 10_000 if total else 0.0


class BatchRecords:
    def __init__(self, jobs: JobStore):
        self.jobs, self.r = jobs, jobs.r

    key = staticmethod(JobStore.batch_key)

    def get(self, batch_id: str, *, rate: bool = True) -> Batch | None:
        """The batch with its counts and state; ``rate=False`` leaves out throughput and
        ETA (one more read of up to 200 end times), which the upload path has no use for."""
        raw = decoded(self.r.hgetall(self.key(batch_id)))
        if not raw:
            return None
        counts = {s: int(raw.pop(f"n_{s}", 0) or 0) for s in STATES}
        variants = json.loads(raw.pop("variants", "[]") or "[]")
        b = decode_fields(raw)
        b.update(
            counts=counts,
            variants=variants,
            total=int(b.get("total") or 0),
            photos=int(b.get("photos") or 0),
            bytes=int(b.get("bytes") or 0),
            open=b.get("open") == "1",
            paused=b.get("paused") == "1",
            canceled=b.get("canceled") == "1",
            closed_at=float(b["closed_at"]) if b.get("closed_at") else None,
            ttl_seconds=int(b.get("ttl_seconds") or 0),
        )
        done = sum(counts[s] for s in TERMINAL)
        b["done"] = done
        b["running"] = self._running(batch_id) if rate and counts["running"] else []
        # Items still running count with the share they have done (a 24 MP photo takes
        # minutes): the bar moves between ends, and still reaches 100 % only at the last.
        b["progress"] = min(
            progress_of(done + sum(r["progress"] for r in b["running"]), b["total"]),
            progress_of(b["total"] - 1, b["total"]) if done < b["total"] else 1.0,
        )
        b["state"] = batch_state(b)
        if rate:
            b.update(self._rate(batch_id, b, done))
        return cast(Batch, b)  # every field Batch declares, read or worked out above

    def _running(self, batch_id: str) -> list[RunningItem]:
        """Running items (at most the feeding window: they are among the in-flight ones)
        with their progress."""
        ids = decoded(self.r.zrange(redis_keys.batch_inflight(batch_id), 0, -1))
        p = self.r.pipeline(transaction=False)
        for jid in ids:
            p.hmget(self.jobs.job_key(jid), "state", "progress")
        return [
            {"id": jid, "progress": float(prog or 0)}
            for jid, (state, prog) in zip(ids, p.execute())
            if state == "running"
        ]

    def _rate(self, batch_id: str, b: dict[str, Any], done: int) -> dict[str, float | None]:
        """Items per second over the recent ends (at most the last 200, last 10 minutes),
        and the seconds left at that rate."""
        t_now = time.time()
        ends = [float(t) for t in self.r.lrange(redis_keys.batch_done(batch_id), 0, 199)]
        ends = [t for t in ends if t_now - t <= 600]
        rate = None
        if len(ends) >= 2 and ends[0] > ends[-1]:
            rate = (len(ends) - 1) / (ends[0] - ends[-1])
        left = b["total"] - done
        eta = None
        if rate and left and not b["paused"] and not b["canceled"]:
            eta = round(left / rate, 1)
        elif not left and not b["open"]:
            eta = 0.0
        return {"throughput_per_s": round(rate, 3) if rate else None, "eta_seconds": eta}

    def get_owned(self, batch_id: str, owner: str, *, rate: bool = True) -> Batch | None:
        b = self.get(batch_id, rate=rate)
        return b if b is not None and b.get("owner") == owner else None

    def item_ids(self, batch_id: str, offset: int = 0, limit: int = -1) -> list[str]:
        end = -1 if limit < 0 else offset + limit - 1
        return decoded(self.r.lrange(redis_keys.batch_items(batch_id), offset, end))

    def iter_items(self, batch_id: str, page: int = 500) -> Iterator[AnyJob]:
        """Every job of the batch in upload order, a page of hashes at a time."""
        offset = 0
        while True:
            ids = self.item_ids(batch_id, offset, page)
            if not ids:
                return
            for j in self.jobs.get_many(ids):
                if j is not None:
                    yield j
            offset += len(ids)

    def list_owned(self, owner: str, offset: int = 0, limit: int = 50) -> list[Batch]:
        ids = decoded(self.r.zrevrange(redis_keys.owner_batches(owner), offset, offset + limit - 1))
        return [b for b in (self.get(i) for i in ids) if b is not None]
