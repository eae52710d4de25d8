"""Batches of any size in Redis: items stream in, a window of them runs at a time.

A batch is created with its parameters (and optional variants: several outputs per
photo, e.g. one per quality level), then photos are added by any number of requests,
then it is closed. Each photo × variant is one job (``batch_id`` set), created
``pending``. The feeder hands pending jobs to the queue a window at a time
(``claim``, services/store/batch_window.py), so one 10,000-photo batch neither fills
Redis with 10,000 messages nor makes every other user wait behind it; finishing items
pull the next ones, and the workers' reaper tops windows up after any crash.

``BatchStore`` is built in layers: ``BatchRecords`` (batch_records.py) reads a batch
and its items, ``BatchWindow`` (batch_window.py) feeds it, and this module creates a
batch, adds its photos and controls it (close, pause, cancel, retry, delete). Their Lua
is in batch_scripts.py.

Keys (``kadr:batch:<id>`` + suffix, built by services/contracts/redis_keys.py):
    (hash)      the batch: params, variants, flags, ``n_<state>`` counters
    :items      list of every job id, in upload order (pages of manifests and views)
    :pending    list of job ids not yet handed to a queue
    :inflight   zset job id → when handed over (queued or running)
    :done       recent end times (throughput, ETA)
    :sha        content sha256 → JSON {variant: job id} of the job(s) that process it
    :names      "<name>\\0<sha256>" → JSON [job ids]: a re-sent upload gets its first answer
    :events     pub/sub channel: "<state> <job id>" on every item state change
``kadr:batches:active`` is the set of batches the reaper keeps fed.
"""

from __future__ import annotations

import json
from typing import Any

from services.contracts import redis_keys
from services.contracts.records import Batch
from services.contracts.tasks import BATCH
from services.store.batch_scripts import OWNER_LOAD, RESERVE
from services.store.batch_window import BatchWindow
from services.store.jobs import STATES, JobStore, encode_fields, new_id, now
from services.store.outbox import Outbox

DEFAULT_VARIANT = "default"


class BatchClosed(Exception):
    pass


class BatchStore(BatchWindow):
    def __init__(self, jobs: JobStore):
        super().__init__(jobs)
        self._reserve = self.r.register_script(RESERVE)
        self._owner_load = self.r.register_script(OWNER_LOAD)
        self.outbox = Outbox(self.r)

    # creation
    def create(
        self,
        *,
        kind: str,
        owner: str,
        params: dict[str, Any],
        variants: list[dict[str, Any]] | None = None,
        name: str = "",
        ttl_seconds: int | None = None,
        request_id: str = "",
        task: str,
        batch_id: str | None = None,
        callback_url: str = "",
    ) -> Batch | None:
        """``variants``: [{"name", "params"}] merged over ``params``; ``task``: the Celery
        task every item runs; ``batch_id``: an id chosen beforehand (idempotent creates);
        ``callback_url``: told once when the batch ends (services/store/outbox.py)."""
        bid = batch_id or new_id()
        variants = variants or [{"name": DEFAULT_VARIANT, "params": {}}]
        ttl = ttl_seconds or self.jobs.ttl
        b: dict[str, Any] = {
            "id": bid,
            "kind": kind,
            "owner": owner,
            "name": name,
            "created_at": now(),
            "params": params,
            "request_id": request_id,
            "task": task,
            "ttl_seconds": ttl,
            "callback_url": callback_url,
        }
        mapping = encode_fields(b)
        mapping.update(
            {
                "variants": json.dumps(variants),
                "total": "0",
                "photos": "0",
                "open": "1",
                "paused": "0",
                "canceled": "0",
                "closed_at": "",
                "bytes": "0",
                **{f"n_{s}": "0" for s in STATES},
            }
        )
        p = self.r.pipeline()
        p.hset(self.key(bid), mapping=mapping)  # type: ignore[arg-type]  # a dict[str, str]: see JobStore.create
        p.expire(self.key(bid), ttl)
        p.sadd(redis_keys.BATCHES_ACTIVE, bid)
        p.zadd(redis_keys.owner_batches(owner), {bid: b["created_at"]})
        p.sadd(self.open_key(owner), bid)
        p.expire(self.open_key(owner), ttl)
        p.execute()
        return self.get(bid)

    # A key's batches that may not have ended yet (pruned by :meth:`owner_load`).
    open_key = staticmethod(redis_keys.owner_open_batches)

    def owner_load(self, owner: str, prune: int = 100) -> tuple[int, int]:
        """(batches not ended, items not ended) of one key: every item of its open batches
        not yet ended, and its jobs outside batches (single photos, videos) not yet ended.
        Those end roughly in the order they came, so looking at the ``prune`` oldest each
        time keeps the count true at a bounded cost."""
        batches, items = self._owner_load(keys=[self.open_key(owner), self.jobs.live_key(owner)], args=[prune])
        return int(batches), int(items)

    def add_photo(
        self,
        batch: Batch,
        *,
        input: dict[str, Any],
        request_id: str = "",
        plans: dict[str, dict[str, Any]] | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """One photo → one job per variant. Returns (jobs, existing): ``existing`` when the
        same name and content were added before (a retried upload: same jobs back).
        Identical content under another name becomes ``skipped`` jobs pointing at the
        jobs that process it (``duplicate_of``). ``plans[variant]`` (the gateway's, per
        photo): ``params`` to run with, its ``estimate`` and ``task`` options (time limits)."""
        bid, bkey = batch["id"], self.key(batch["id"])
        sha, name = input["sha256"], input["name"]
        variants = batch["variants"]
        ids = {v["name"]: new_id() for v in variants}
        verdict, *found = self._reserve(
            keys=[bkey, redis_keys.batch_names(bid), redis_keys.batch_sha(bid)],
            args=[f"{name}\0{sha}", sha, json.dumps(list(ids.values())), json.dumps(ids)],
        )
        if verdict == "closed":
            raise BatchClosed(bid)
        if verdict == "existing":
            prior = json.loads(found[0])
            # The first request may still be writing these jobs: answer with their ids anyway.
            return [
                dict(j) if j else {"id": jid, "variant": v["name"], "state": "pending", "duplicate_of": ""}
                for jid, v, j in zip(prior, variants, self.jobs.get_many(prior))
            ], True
        original = json.loads(found[0]) if verdict == "duplicate" else None
        ttl = int(batch.get("ttl_seconds") or self.jobs.ttl)
        p = self.r.pipeline()
        jobs = []
        for v in variants:
            jid = ids[v["name"]]
            plan = (plans or {}).get(v["name"]) or {}
            params = plan.get("params") or {**batch["params"], **(v.get("params") or {})}
            dup = original.get(v["name"]) if original else None
            job = self.jobs.create(
                kind=batch["kind"],
                owner=batch["owner"],
                params=params,
                input=input,
                batch_id=bid,
                request_id=request_id,
                job_id=jid,
                pipe=p,
                estimate=plan.get("estimate"),
            )
            fields = {
                "variant": v["name"],
                "state": "skipped" if dup else "pending",
                "task": batch["task"],
                "task_payload": json.dumps(
                    {"job_id": jid, "request_id": request_id, "priority": BATCH, **plan.get("task", {})}
                ),
            }
            if dup:
                fields.update(duplicate_of=dup, finished_at=str(now()), progress="1.0")
            p.hset(self.jobs.job_key(jid), mapping=fields)  # type: ignore[arg-type]  # see JobStore.create
            p.expire(self.jobs.job_key(jid), ttl)
            job["variant"], job["duplicate_of"] = v["name"], dup or ""
            job["state"] = "skipped" if dup else "pending"
            p.rpush(redis_keys.batch_items(bid), jid)
            if dup:
                p.hincrby(bkey, "n_skipped", 1)
                p.lpush(redis_keys.batch_done(bid), now())
            else:
                p.rpush(redis_keys.batch_pending(bid), jid)
                p.hincrby(bkey, "n_pending", 1)
            jobs.append(dict(job))
        p.hincrby(bkey, "total", len(variants))
        p.hincrby(bkey, "photos", 1)
        p.hincrby(bkey, "bytes", int(input.get("bytes") or 0))
        for key in redis_keys.batch_keys(bid):
            p.expire(key, ttl)  # an open batch is kept its TTL after its last upload
        try:
            p.execute()
        except BaseException:
            # Nothing was written (MULTI/EXEC; Redis refuses a write past maxmemory before
            # running any): free the reservation, or a retry would get ids of no job.
            r = self.r.pipeline()
            r.hdel(redis_keys.batch_names(bid), f"{name}\0{sha}")
            if verdict == "new":
                r.hdel(redis_keys.batch_sha(bid), sha)
            r.execute()
            raise
        return jobs, False

    # control
    def _ids_in(self, batch_id: str, states: tuple[str, ...]) -> list[str]:
        return [j["id"] for j in self.iter_items(batch_id) if j["state"] in states]

    def close(self, batch_id: str) -> None:
        self.r.hset(self.key(batch_id), mapping={"open": "0", "closed_at": str(now())})
        self.outbox.batch_maybe_ended(batch_id)  # nothing left to run: it ends now

    def set_paused(self, batch_id: str, paused: bool) -> None:
        self.r.hset(self.key(batch_id), "paused", "1" if paused else "0")

    def cancel(self, batch_id: str) -> int:
        """No new items start; pending and queued ones end ``canceled`` (a queued message
        still on the queue is skipped by the worker), running ones too: their worker sees
        it at its next unit of work (a tile, a face) and stops without a result."""
        self.r.hset(self.key(batch_id), mapping={"canceled": "1", "open": "0"})
        self.r.hsetnx(self.key(batch_id), "closed_at", str(now()))
        self.r.delete(redis_keys.batch_pending(batch_id))
        active = ("pending", "queued", "running")
        moved = self._moves(batch_id, "canceled", active, self._ids_in(batch_id, active))
        self.outbox.batch_maybe_ended(batch_id)
        return moved

    def retry_failed(self, batch_id: str, max_deliveries: int = 3) -> int:
        """Failed items run again; one that ended ``worker_lost`` (it took its worker down
        ``max_deliveries`` times) gets a single start more."""
        self.r.hset(self.key(batch_id), "callback_fired", "0")  # its next end is announced again
        return self._moves(
            batch_id, "pending", ("failed",), self._ids_in(batch_id, ("failed",)), lost_keep=max(0, max_deliveries - 1)
        )

    def delete(self, batch_id: str) -> None:
        b = self.get(batch_id)
        p = self.r.pipeline()
        for j in self.item_ids(batch_id):
            p.delete(self.jobs.job_key(j))
        p.delete(*redis_keys.batch_keys(batch_id))
        p.srem(redis_keys.BATCHES_ACTIVE, batch_id)
        if b:
            p.zrem(redis_keys.owner_batches(b["owner"]), batch_id)
            p.srem(self.open_key(b["owner"]), batch_id)
        p.execute()
