"""Job store in Redis: every accepted request is a job; batches group jobs.

A job is a Redis hash of JSON-safe strings. State changes go through one Lua script so
that the check ("may this job move from its current state?"), the write and the batch
counters change together: a redelivered task can never finish a job twice, and batch
counts never drift from the items. Designed for batches of 10,000+ items: items are a
Redis list of ids, counts are hash counters, nothing is rewritten whole.
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from services.contracts import redis_keys
from services.store import outbox
from services.store.connection import decoded

# pending: a batch item not yet handed to a queue (batches feed a window at a time);
# skipped: a batch item whose identical content another item of the batch processes.
STATES = ("pending", "queued", "running", "succeeded", "failed", "skipped", "canceled")
TERMINAL = frozenset({"succeeded", "failed", "skipped", "canceled"})
ACTIVE = frozenset({"queued", "running"})
_JSON_FIELDS = ("params", "input", "result", "error", "estimate", "callback", "webhook")

# The state change itself, shared by the transition and begin scripts (a script cannot
# call another). Returns {moved(0/1), previous state or ""}. Keys: redis_keys.LUA (in outbox.LUA).
_MOVE_FN = outbox.LUA + """
local function move(key, to, allowed, now, fields)
  local cur = redis.call('HGET', key, 'state')
  if not cur then return {0, ''} end
  local ok = false
  for s in string.gmatch(allowed, '[^,]+') do if s == cur then ok = true end end
  if not ok then return {0, cur} end
  redis.call('HSET', key, 'state', to, 'updated_at', now)
  for i = 1, #fields, 2 do redis.call('HSET', key, fields[i], fields[i + 1]) end
  local jid = redis.call('HGET', key, 'id')
  if to == 'running' then
    redis.call('ZADD', RUNNING_KEY, now, jid)
  elseif cur == 'running' then
    redis.call('ZREM', RUNNING_KEY, jid)
  end
  local batch = redis.call('HGET', key, 'batch_id')
  if batch and batch ~= '' and cur ~= to then
    local bkey = batch_key(batch)
    redis.call('HINCRBY', bkey, 'n_' .. cur, -1)
    redis.call('HINCRBY', bkey, 'n_' .. to, 1)
    -- in flight: handed to a queue and not ended; the feeder keeps this under the window
    if to == 'queued' or to == 'running' then
      redis.call('ZADD', bkey .. INFLIGHT, 'NX', now, jid)
    else
      redis.call('ZREM', bkey .. INFLIGHT, jid)
    end
    if to == 'succeeded' or to == 'failed' or to == 'skipped' or to == 'canceled' then
      redis.call('LPUSH', bkey .. DONE, now)  -- recent end times: throughput and ETA
      redis.call('LTRIM', bkey .. DONE, 0, 199)
      batch_end(batch, now)  -- its completion callback, if this was the last
    end
    redis.call('PUBLISH', bkey .. EVENTS, to .. ' ' .. jid)
  end
  if to == 'succeeded' or to == 'failed' or to == 'skipped' or to == 'canceled' then
    job_end(key, jid, to, now)  -- its completion callback, queued with the change itself
  end
  redis.call('PUBLISH', key .. EVENTS, to)
  return {1, cur}
end
"""

# KEYS[1] job hash. ARGV: new state, allowed-from (comma list), now, then field/value pairs.
_TRANSITION = _MOVE_FN + """
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
return move(KEYS[1], ARGV[1], ARGV[2], ARGV[3], fields)
"""

# Counts one more delivery of a job's task and decides what the worker does with it.
# KEYS[1] job hash. ARGV: max deliveries, now, worker id.
# Returns {verdict, deliveries}: "run", "skip" (already finished: a redelivery after
# success must not run again), "busy" (running in a worker whose heartbeat is alive: a
# duplicate message, e.g. restored after a requeue), "exhausted" (the caller fails it as
# worker_lost), "paused" (its batch is paused: the job goes back to pending), "gone".
# On "run" the job is already moved to running, and its hash comes back as a third
# element: one round trip from message to work instead of three.
_BEGIN = _MOVE_FN + """
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then return {'gone', 0} end
if cur ~= 'queued' and cur ~= 'running' then return {'skip', 0} end
local batch = redis.call('HGET', KEYS[1], 'batch_id')
if cur == 'queued' and batch and batch ~= '' then
  local bkey = batch_key(batch)
  if redis.call('HGET', bkey, 'paused') == '1' then
    -- paused after this was handed to the queue: back to the front of the pending list
    local jid = redis.call('HGET', KEYS[1], 'id')
    redis.call('HSET', KEYS[1], 'state', 'pending', 'updated_at', ARGV[2])
    redis.call('HINCRBY', bkey, 'n_queued', -1)
    redis.call('HINCRBY', bkey, 'n_pending', 1)
    redis.call('ZREM', bkey .. INFLIGHT, jid)
    redis.call('LPUSH', bkey .. PENDING, jid)
    redis.call('PUBLISH', bkey .. EVENTS, 'pending ' .. jid)
    return {'paused', 0}
  end
end
if cur == 'running' then
  local w = redis.call('HGET', KEYS[1], 'worker')
  if w and w ~= '' and w ~= ARGV[3] and redis.call('EXISTS', worker_key(w)) == 1 then
    return {'busy', 0}
  end
end
local n = redis.call('HINCRBY', KEYS[1], 'deliveries', 1)
if n > tonumber(ARGV[1]) then return {'exhausted', n} end
move(KEYS[1], 'running', 'queued,running', ARGV[2],
     {'worker', ARGV[3], 'started_at', ARGV[2], 'progress', '0.0'})
return {'run', n, redis.call('HGETALL', KEYS[1])}
"""


# KEYS[1] job hash, KEYS[2] its batch's channel or "". ARGV: progress, now, job id.
_PROGRESS = redis_keys.LUA + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[1], 'updated_at', ARGV[2])
redis.call('PUBLISH', KEYS[1] .. EVENTS, 'progress ' .. ARGV[1])
if KEYS[2] ~= '' then redis.call('PUBLISH', KEYS[2], 'progress ' .. ARGV[3]) end
return 1
"""


def now() -> float:
    return round(time.time(), 3)


def new_id() -> str:
    return str(uuid.uuid4())




def _encode(fields: dict[str, Any]) -> dict[str, str]:
    out = {}
    for k, v in fields.items():
        if k in _JSON_FIELDS:
            out[k] = json.dumps(v, separators=(",", ":"), allow_nan=False)
        elif v is None:
            out[k] = ""
        else:
            out[k] = str(v)
    return out


def _decode(raw: dict[str, str]) -> dict[str, Any]:
    job: dict[str, Any] = {}
    for k, v in raw.items():
        if k in _JSON_FIELDS:
            job[k] = json.loads(v) if v else None
        elif k in ("progress", "created_at", "started_at", "finished_at", "updated_at"):
            job[k] = float(v) if v else None
        elif k == "deliveries":
            job[k] = int(v or 0)
        else:
            job[k] = v
    return job


@dataclass
class Transition:
    moved: bool
    previous: str


class JobStore:
    def __init__(self, client: redis.Redis, ttl_seconds: int = 7 * 24 * 3600):
        self.r = client
        self.ttl = ttl_seconds
        self._transition = self.r.register_script(_TRANSITION)
        self._begin = self.r.register_script(_BEGIN)
        self._progress = self.r.register_script(_PROGRESS)

    # keys
    # keys (services/contracts/redis_keys.py)
    job_key = staticmethod(redis_keys.job)
    batch_key = staticmethod(redis_keys.batch)
    owner_key = staticmethod(redis_keys.owner_jobs)
    videos_key = staticmethod(redis_keys.owner_videos)  # a key's videos by upload time (GET /api/v1/videos)
    # A key's jobs outside batches that may not have ended yet (pruned as they end).
    live_key = staticmethod(redis_keys.owner_live)

    # jobs
    def create(self, *, kind: str, owner: str, params: dict[str, Any], input: dict[str, Any] | None = None,
               batch_id: str = "", request_id: str = "", job_id: str | None = None,
               parent_id: str = "", pipe: redis.client.Pipeline | None = None,
               estimate: dict[str, Any] | None = None,
               callback_url: str = "", callback_subject: str = "") -> dict[str, Any]:
        job_id = job_id or new_id()
        t = now()
        job = {
            "id": job_id, "kind": kind, "owner": owner, "state": "queued", "progress": 0.0,
            "created_at": t, "updated_at": t, "started_at": None, "finished_at": None,
            "params": params, "input": input, "result": None, "error": None,
            "batch_id": batch_id, "request_id": request_id, "deliveries": 0, "worker": "",
            "parent_id": parent_id, "estimate": estimate, "callback_url": callback_url,
            "callback_subject": callback_subject,
        }
        p = pipe if pipe is not None else self.r.pipeline()
        key = self.job_key(job_id)
        # redis-py's ``mapping`` is a Mapping keyed by any encodable type, and Mapping's key is
        # invariant: no dict[str, str] fits it, though every one is a valid argument.
        p.hset(key, mapping=_encode(job))  # type: ignore[arg-type]
        p.expire(key, self.ttl)
        indexes = []  # the key's sorted sets this job joins, by creation time
        if not batch_id:
            # Counted against its key's work in flight until it ends (BatchStore.owner_load).
            indexes.append(self.live_key(owner))
        if parent_id:
            # Listed under its parent (a video's result sets), not on its own.
            ckey = redis_keys.job_children(parent_id)
            p.rpush(ckey, job_id)
            p.expire(ckey, self.ttl)
        elif not batch_id:
            indexes.append(self.owner_key(owner))
            if kind == "segment":
                indexes.append(self.videos_key(owner))
        for index in indexes:
            p.zadd(index, {job_id: t})
            p.expire(index, self.ttl)
        if pipe is None:
            p.execute()
        return job

    def get(self, job_id: str) -> dict[str, Any] | None:
        raw = decoded(self.r.hgetall(self.job_key(job_id)))
        return _decode(raw) if raw else None

    def get_many(self, job_ids: list[str]) -> list[dict[str, Any] | None]:
        p = self.r.pipeline(transaction=False)
        for j in job_ids:
            p.hgetall(self.job_key(j))
        return [_decode(r) if r else None for r in p.execute()]

    def get_owned(self, job_id: str, owner: str) -> dict[str, Any] | None:
        """A job another key created is reported as absent, not forbidden: ids don't leak."""
        job = self.get(job_id)
        if job is None or job.get("owner") != owner:
            return None
        return job

    def transition(self, job_id: str, to: str, *, allowed_from: Iterable[str],
                   **fields: Any) -> Transition:
        if to in TERMINAL:
            fields.setdefault("finished_at", now())
            if to == "succeeded":
                fields.setdefault("progress", 1.0)
        enc = _encode(fields)
        args = [to, ",".join(allowed_from), str(now())]
        for k, v in enc.items():
            args += [k, v]
        moved, prev = self._transition(keys=[self.job_key(job_id)], args=args)
        return Transition(bool(moved), prev)

    def begin(self, job_id: str, *, max_deliveries: int,
              worker: str) -> tuple[str, int, dict[str, Any] | None]:
        """(verdict, deliveries, job): see ``_BEGIN``; on "run" the job as it now is
        (running, in this worker), else None."""
        verdict, n, *rest = self._begin(keys=[self.job_key(job_id)],
                                        args=[max_deliveries, now(), worker])
        job = None
        if verdict == "run" and rest:
            flat = rest[0]
            job = _decode(dict(zip(flat[::2], flat[1::2])))
        return verdict, int(n), job

    def set_task(self, job_id: str, task: str, payload: dict[str, Any]) -> None:
        """What to send again if the job is orphaned (its worker died with it running)."""
        self.r.hset(self.job_key(job_id), mapping={"task": task, "task_payload": json.dumps(payload)})

    def running_ids(self) -> list[str]:
        return decoded(self.r.zrange(redis_keys.RUNNING, 0, -1))

    def set_progress(self, job_id: str, progress: float, *, batch_id: str = "") -> None:
        """Record the fraction done and announce it ("progress <p>" on the job's channel,
        "progress <id>" on its batch's), so open streams move without polling."""
        p = str(round(min(max(progress, 0.0), 1.0), 4))
        # Only an existing job: a deleted one must not come back as a hash with no TTL.
        self._progress(keys=[self.job_key(job_id), redis_keys.batch_events(batch_id) if batch_id else ""],
                       args=[p, str(now()), job_id])

    def children(self, parent_id: str) -> list[dict[str, Any]]:
        ids = decoded(self.r.lrange(redis_keys.job_children(parent_id), 0, -1))
        return [j for j in self.get_many(ids) if j is not None]

    def delete(self, job_id: str) -> None:
        """The record with its children's (a video's result sets) and every index entry."""
        job = self.get(job_id)
        children = decoded(self.r.lrange(redis_keys.job_children(job_id), 0, -1))
        p = self.r.pipeline()
        for child in children:
            p.delete(self.job_key(child))
        p.delete(self.job_key(job_id), redis_keys.job_children(job_id))
        p.zrem(redis_keys.RUNNING, job_id, *children)
        if job:
            p.zrem(self.owner_key(job["owner"]), job_id)
            p.zrem(self.videos_key(job["owner"]), job_id)
            p.zrem(self.live_key(job["owner"]), job_id, *children)
        p.execute()

    def list_owned(self, owner: str, *, offset: int = 0, limit: int = 50) -> list[dict[str, Any]]:
        ids = decoded(self.r.zrevrange(self.owner_key(owner), offset, offset + limit - 1))
        return [j for j in self.get_many(ids) if j is not None]

    def list_videos(self, owner: str, *, offset: int = 0, limit: int = 50) -> tuple[list[dict[str, Any]], int]:
        """A page of the key's videos, newest first, and how many it has."""
        p = self.r.pipeline(transaction=False)
        p.zrevrange(self.videos_key(owner), offset, offset + limit - 1)
        p.zcard(self.videos_key(owner))
        ids, total = p.execute()
        return [j for j in self.get_many(ids) if j is not None], int(total)
