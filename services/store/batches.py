"""Batches of any size in Redis: items stream in, a window of them runs at a time.

A batch is created with its parameters (and optional variants: several outputs per
photo, e.g. one per quality level), then photos are added by any number of requests,
then it is closed. Each photo × variant is one job (``batch_id`` set), created
``pending``. The feeder hands pending jobs to the queue a window at a time
(``claim`` below), so one 10,000-photo batch neither fills Redis with 10,000 messages
nor makes every other user wait behind it; finishing items pull the next ones, and the
workers' reaper tops windows up after any crash.

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
import math
import time
from collections.abc import Iterator
from typing import Any

from services.contracts import redis_keys
from services.contracts.tasks import BATCH, ENHANCE_QUEUE, queue_key
from services.store.connection import decoded
from services.store.jobs import STATES, TERMINAL, JobStore, _decode, _encode, new_id, now
from services.store.outbox import Outbox

DEFAULT_VARIANT = "default"

# The scripts build keys with redis_keys.LUA.
# KEYS[1] batch hash, KEYS[2] the queue's list at the batch step. ARGV: window, now,
# queue limit. Moves up to (window - in flight) pending jobs to queued, and no
# more than leave the queue's batch step at its limit, unless the batch is paused or
# canceled; returns id, task, task payload of each.
_CLAIM = redis_keys.LUA + """
if redis.call('HGET', KEYS[1], 'paused') == '1' or redis.call('HGET', KEYS[1], 'canceled') == '1' then
  return {}
end
local room = math.min(tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[1] .. INFLIGHT),
                      tonumber(ARGV[3]) - redis.call('LLEN', KEYS[2]))
local out = {}
while room > 0 do
  local jid = redis.call('LPOP', KEYS[1] .. PENDING)
  if not jid then break end
  local jkey = job_key(jid)
  if redis.call('HGET', jkey, 'state') == 'pending' then
    redis.call('HSET', jkey, 'state', 'queued', 'updated_at', ARGV[2], 'dispatched_at', ARGV[2])
    redis.call('HINCRBY', KEYS[1], 'n_pending', -1)
    redis.call('HINCRBY', KEYS[1], 'n_queued', 1)
    redis.call('ZADD', KEYS[1] .. INFLIGHT, ARGV[2], jid)
    redis.call('PUBLISH', KEYS[1] .. EVENTS, 'queued ' .. jid)
    out[#out + 1] = jid
    out[#out + 1] = redis.call('HGET', jkey, 'task') or ''
    out[#out + 1] = redis.call('HGET', jkey, 'task_payload') or ''
    room = room - 1
  end
end
return out
"""

# KEYS: batch hash, its :names, its :sha. ARGV: "<name>\0<sha256>", sha256, the new job
# ids as stored under :names, then as stored under :sha. Reserves a photo's place in
# one step: {"closed"}, {"existing", prior ids} (the same name and content came before),
# {"duplicate", the ids that process this content}, or {"new"}.
_RESERVE = """
if redis.call('HGET', KEYS[1], 'open') ~= '1' then return {'closed'} end
local prior = redis.call('HGET', KEYS[2], ARGV[1])
if prior then return {'existing', prior} end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local original = redis.call('HGET', KEYS[3], ARGV[2])
if original then return {'duplicate', original} end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
return {'new'}
"""

# KEYS[1] batch hash. ARGV: to-state, now, from-states (comma list), the deliveries a
# job that ended worker_lost keeps when it goes back to pending, then job ids. Moves
# each listed job that is in a from-state to the to-state; returns the count.
_MOVE = redis_keys.LUA + """
local n = 0
local allowed = {}
for s in string.gmatch(ARGV[3], '[^,]+') do allowed[s] = true end
for i = 5, #ARGV do
  local jid = ARGV[i]
  local jkey = job_key(jid)
  local cur = redis.call('HGET', jkey, 'state')
  if cur and allowed[cur] then
    redis.call('HSET', jkey, 'state', ARGV[1], 'updated_at', ARGV[2])
    redis.call('HINCRBY', KEYS[1], 'n_' .. cur, -1)
    redis.call('HINCRBY', KEYS[1], 'n_' .. ARGV[1], 1)
    if ARGV[1] == 'canceled' then
      redis.call('HSET', jkey, 'finished_at', ARGV[2])
      redis.call('LPUSH', KEYS[1] .. DONE, ARGV[2])
    end
    if ARGV[1] == 'pending' then
      -- A job that killed its worker every time gets one more start, not a fresh three:
      -- retrying must not let one photo keep crashing the shared worker.
      local lost = string.find(redis.call('HGET', jkey, 'error') or '', '"worker_lost"', 1, true)
      redis.call('HSET', jkey, 'deliveries', lost and ARGV[4] or '0', 'error', '', 'finished_at', '',
                 'progress', '0')
      redis.call('RPUSH', KEYS[1] .. PENDING, jid)
    end
    redis.call('ZREM', KEYS[1] .. INFLIGHT, jid)
    redis.call('PUBLISH', KEYS[1] .. EVENTS, ARGV[1] .. ' ' .. jid)
    n = n + 1
  end
end
redis.call('LTRIM', KEYS[1] .. DONE, 0, 199)
return n
"""


# KEYS: the key's open batches (set), its live jobs outside batches (zset). ARGV: how
# many of the oldest live jobs to look at. Forgets batches that ended or expired and
# live jobs that ended; returns {batches not ended, items not ended}.
_OWNER_LOAD = redis_keys.LUA + """
local batches, items = 0, 0
for _, bid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('HMGET', batch_key(bid), 'open', 'n_pending', 'n_queued', 'n_running')
  local active = tonumber(v[2] or 0) + tonumber(v[3] or 0) + tonumber(v[4] or 0)
  if v[1] == '1' or active > 0 then
    batches = batches + 1
    items = items + active
  else
    redis.call('SREM', KEYS[1], bid)
  end
end
for _, jid in ipairs(redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[1]) - 1)) do
  local st = redis.call('HGET', job_key(jid), 'state')
  if st ~= 'pending' and st ~= 'queued' and st ~= 'running' then
    redis.call('ZREM', KEYS[2], jid)
  end
end
return {batches, items + redis.call('ZCARD', KEYS[2])}
"""


class BatchClosed(Exception):
    pass


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


class BatchStore:
    def __init__(self, jobs: JobStore):
        self.jobs, self.r = jobs, jobs.r
        self._claim = self.r.register_script(_CLAIM)
        self._move = self.r.register_script(_MOVE)
        self._reserve = self.r.register_script(_RESERVE)
        self._owner_load = self.r.register_script(_OWNER_LOAD)
        self.outbox = Outbox(self.r)

    key = staticmethod(JobStore.batch_key)

    # creation
    def create(self, *, kind: str, owner: str, params: dict[str, Any], variants: list[dict[str, Any]] | None = None,
               name: str = "", ttl_seconds: int | None = None, request_id: str = "", task: str,
               batch_id: str | None = None, callback_url: str = "") -> dict[str, Any] | None:
        """``variants``: [{"name", "params"}] merged over ``params``; ``task``: the Celery
        task every item runs; ``batch_id``: an id chosen beforehand (idempotent creates);
        ``callback_url``: told once when the batch ends (services/store/outbox.py)."""
        bid = batch_id or new_id()
        variants = variants or [{"name": DEFAULT_VARIANT, "params": {}}]
        ttl = ttl_seconds or self.jobs.ttl
        b: dict[str, Any] = {"id": bid, "kind": kind, "owner": owner, "name": name, "created_at": now(),
                             "params": params, "request_id": request_id, "task": task, "ttl_seconds": ttl,
                             "callback_url": callback_url}
        mapping = _encode(b)
        mapping.update({"variants": json.dumps(variants), "total": "0", "photos": "0", "open": "1",
                        "paused": "0", "canceled": "0", "closed_at": "", "bytes": "0",
                        **{f"n_{s}": "0" for s in STATES}})
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
        batches, items = self._owner_load(keys=[self.open_key(owner), self.jobs.live_key(owner)],
                                          args=[prune])
        return int(batches), int(items)

    def add_photo(self, batch: dict[str, Any], *, input: dict[str, Any], request_id: str = "",
                  plans: dict[str, dict[str, Any]] | None = None) -> tuple[list[dict[str, Any]], bool]:
        """One photo → one job per variant. Returns (jobs, existing): ``existing`` when the
        same name and content were added before (a retried upload: same jobs back).
        Identical content under another name becomes ``skipped`` jobs pointing at the
        jobs that process it (``duplicate_of``). ``plans[variant]`` (the gateway's, per
        photo): ``params`` to run with, its ``estimate`` and ``task`` options (time limits)."""
        bid, bkey = batch["id"], self.key(batch["id"])
        sha, name = input["sha256"], input["name"]
        variants = batch["variants"]
        ids = {v["name"]: new_id() for v in variants}
        verdict, *found = self._reserve(keys=[bkey, redis_keys.batch_names(bid), redis_keys.batch_sha(bid)],
                                        args=[f"{name}\0{sha}", sha, json.dumps(list(ids.values())),
                                              json.dumps(ids)])
        if verdict == "closed":
            raise BatchClosed(bid)
        if verdict == "existing":
            prior = json.loads(found[0])
            # The first request may still be writing these jobs: answer with their ids anyway.
            return [j or {"id": jid, "variant": v["name"], "state": "pending", "duplicate_of": ""}
                    for jid, v, j in zip(prior, variants, self.jobs.get_many(prior))], True
        original = json.loads(found[0]) if verdict == "duplicate" else None
        ttl = int(batch.get("ttl_seconds") or self.jobs.ttl)
        p = self.r.pipeline()
        jobs = []
        for v in variants:
            jid = ids[v["name"]]
            plan = (plans or {}).get(v["name"]) or {}
            params = plan.get("params") or {**batch["params"], **(v.get("params") or {})}
            dup = original.get(v["name"]) if original else None
            job = self.jobs.create(kind=batch["kind"], owner=batch["owner"], params=params, input=input,
                                   batch_id=bid, request_id=request_id, job_id=jid, pipe=p,
                                   estimate=plan.get("estimate"))
            fields = {"variant": v["name"], "state": "skipped" if dup else "pending",
                      "task": batch["task"],
                      "task_payload": json.dumps({"job_id": jid, "request_id": request_id, "priority": BATCH,
                                                  **plan.get("task", {})})}
            if dup:
                fields.update(duplicate_of=dup, finished_at=str(now()), progress="1.0")
            p.hset(self.jobs.job_key(jid), mapping=fields)  # type: ignore[arg-type]  # see JobStore.create
            p.expire(self.jobs.job_key(jid), ttl)
            job.update(variant=v["name"], state=fields["state"], duplicate_of=dup or "")
            p.rpush(redis_keys.batch_items(bid), jid)
            if dup:
                p.hincrby(bkey, "n_skipped", 1)
                p.lpush(redis_keys.batch_done(bid), now())
            else:
                p.rpush(redis_keys.batch_pending(bid), jid)
                p.hincrby(bkey, "n_pending", 1)
            jobs.append(job)
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

    # reading
    def get(self, batch_id: str, *, rate: bool = True) -> dict[str, Any] | None:
        """The batch with its counts and state; ``rate=False`` leaves out throughput and
        ETA (one more read of up to 200 end times), which the upload path has no use for."""
        raw = decoded(self.r.hgetall(self.key(batch_id)))
        if not raw:
            return None
        counts = {s: int(raw.pop(f"n_{s}", 0) or 0) for s in STATES}
        variants = json.loads(raw.pop("variants", "[]") or "[]")
        b = _decode(raw)
        b.update(counts=counts, variants=variants, total=int(b.get("total") or 0),
                 photos=int(b.get("photos") or 0), bytes=int(b.get("bytes") or 0),
                 open=b.get("open") == "1", paused=b.get("paused") == "1", canceled=b.get("canceled") == "1",
                 closed_at=float(b["closed_at"]) if b.get("closed_at") else None,
                 ttl_seconds=int(b.get("ttl_seconds") or 0))
        done = sum(counts[s] for s in TERMINAL)
        b["done"] = done
        b["running"] = self._running(batch_id) if rate and counts["running"] else []
        # Items still running count with the share they have done (a 24 MP photo takes
        # minutes): the bar moves between ends, and still reaches 100 % only at the last.
        b["progress"] = min(progress_of(done + sum(r["progress"] for r in b["running"]), b["total"]),
                            progress_of(b["total"] - 1, b["total"]) if done < b["total"] else 1.0)
        b["state"] = batch_state(b)
        if rate:
            b.update(self._rate(batch_id, b, done))
        return b

    def _running(self, batch_id: str) -> list[dict[str, Any]]:
        """Running items (at most the feeding window: they are among the in-flight ones)
        with their progress."""
        ids = decoded(self.r.zrange(redis_keys.batch_inflight(batch_id), 0, -1))
        p = self.r.pipeline(transaction=False)
        for jid in ids:
            p.hmget(self.jobs.job_key(jid), "state", "progress")
        return [{"id": jid, "progress": float(prog or 0)}
                for jid, (state, prog) in zip(ids, p.execute()) if state == "running"]

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

    def get_owned(self, batch_id: str, owner: str, *, rate: bool = True) -> dict[str, Any] | None:
        b = self.get(batch_id, rate=rate)
        return b if b is not None and b.get("owner") == owner else None

    def item_ids(self, batch_id: str, offset: int = 0, limit: int = -1) -> list[str]:
        end = -1 if limit < 0 else offset + limit - 1
        return decoded(self.r.lrange(redis_keys.batch_items(batch_id), offset, end))

    def iter_items(self, batch_id: str, page: int = 500) -> Iterator[dict[str, Any]]:
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

    def list_owned(self, owner: str, offset: int = 0, limit: int = 50) -> list[dict[str, Any]]:
        ids = decoded(self.r.zrevrange(redis_keys.owner_batches(owner), offset, offset + limit - 1))
        return [b for b in (self.get(i) for i in ids) if b is not None]

    def active_ids(self) -> list[str]:
        return list(decoded(self.r.smembers(redis_keys.BATCHES_ACTIVE)))

    # feeding
    def claim(self, batch_id: str, window: int, queue_limit: int = 10**9,
              queue: str = ENHANCE_QUEUE) -> list[tuple[str, tuple[str, dict[str, Any]] | None]]:
        """Claimed jobs: (id, (task, payload) as recorded, or None if it has none), at most
        ``window`` of the batch in flight and ``queue_limit`` batch items on ``queue``."""
        flat = self._claim(keys=[self.key(batch_id), queue_key(queue, BATCH)],
                           args=[window, now(), queue_limit])
        return [(jid, (task, json.loads(payload)) if task and payload else None)
                for jid, task, payload in zip(flat[::3], flat[1::3], flat[2::3])]

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

    def finished(self, b: dict[str, Any]) -> bool:
        return not b["open"] and b["done"] == b["total"]

    def retire(self, batch_id: str) -> None:
        """Off the reaper's list (finished, or gone)."""
        self.r.srem(redis_keys.BATCHES_ACTIVE, batch_id)

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

    # control
    def _moves(self, batch_id: str, to: str, allowed: tuple[str, ...], ids: list[str],
               lost_keep: int = 0) -> int:
        n = 0
        for i in range(0, len(ids), 1000):
            n += int(self._move(keys=[self.key(batch_id)],
                                args=[to, now(), ",".join(allowed), lost_keep, *ids[i:i + 1000]]))
        return n

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
        return self._moves(batch_id, "pending", ("failed",), self._ids_in(batch_id, ("failed",)),
                           lost_keep=max(0, max_deliveries - 1))

    def reactivate(self, batch_id: str) -> None:
        self.r.sadd(redis_keys.BATCHES_ACTIVE, batch_id)

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

