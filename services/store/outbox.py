"""The outbox: callbacks and webhooks waiting to be delivered, kept in Redis.

An end state is put here in the same Lua script that records it (services/store/jobs.py),
so a process that dies right after the transition cannot lose it, and a job that ends
once is announced once. The deliverer (services/upkeep/delivery.py, in the janitor
process) claims due entries with a lease: one that dies mid-delivery leaves the entry to
come due again when the lease runs out, so a delivery survives a restart of any process.

Keys (built by services/contracts/redis_keys.py, ``kadr:`` prefix):

- ``outbox:due``: sorted set, delivery id -> when it is next due;
- ``outbox:<delivery id>``: hash: subject (``job``, ``batch``, ``event``: a camera event
  for its camera's ``webhook_url``), id, state,
  url, owner, the field of the subject's record that shows the delivery state
  (``callback``, or ``webhook`` for camera events), attempts, the body once built;
- ``outbox:once:<job id>:<state>``: a job's end state already announced (30 days).
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from services.contracts import redis_keys
from services.store.connection import decoded

LEASE_SECONDS = 120  # a claimed delivery comes due again after this if its deliverer died


# Lua, included in the job store's state-change script: ``outbox_add`` queues one
# delivery and marks the subject's record pending; ``batch_end`` queues a batch's
# callback when its last active item has ended and it is closed. Keys: redis_keys.LUA.
LUA = (
    redis_keys.LUA
    + """
local function outbox_add(did, subject, id, state, url, owner, rkey, field, now)
  -- a camera event's webhook goes where the operator configured it: no destination policy
  redis.call('HSET', outbox_key(did), 'subject', subject, 'id', id, 'state', state, 'url', url,
             'owner', owner, 'field', field, 'record', rkey, 'attempts', '0', 'created_at', now,
             'trusted', subject == 'event' and '1' or '0')
  redis.call('ZADD', OUTBOX_DUE_KEY, now, did)
  redis.call('HSET', rkey, field, '{"state":"pending","attempts":0}')
end
local function job_end(key, jid, to, now)
  local cb = redis.call('HGET', key, 'callback_url')
  if not cb or cb == '' then return end
  if redis.call('SET', outbox_once_key(jid, to), '1', 'NX', 'EX', 2592000) then
    local subject = redis.call('HGET', key, 'callback_subject')
    if not subject or subject == '' then subject = 'job' end
    outbox_add(subject .. ':' .. jid .. ':' .. to, subject, jid, to, cb,
               redis.call('HGET', key, 'owner') or '', key, subject == 'event' and 'webhook' or 'callback', now)
  end
end
local function batch_end(bid, now)
  local bkey = batch_key(bid)
  local b = redis.call('HMGET', bkey, 'open', 'n_pending', 'n_queued', 'n_running', 'callback_url', 'owner',
                       'callback_fired')
  if b[1] ~= '0' or not b[5] or b[5] == '' or b[7] == '1' then return end
  if (tonumber(b[2]) or 0) + (tonumber(b[3]) or 0) + (tonumber(b[4]) or 0) > 0 then return end
  -- once per end: retrying the failed items (BatchStore.retry_failed) clears the mark
  redis.call('HSET', bkey, 'callback_fired', '1')
  local n = redis.call('HINCRBY', bkey, 'callback_ends', 1)
  outbox_add('batch:' .. bid .. ':' .. n, 'batch', bid, 'ended', b[5], b[6] or '', bkey, 'callback', now)
end
"""
)

# KEYS: none. ARGV: batch id, now.
BATCH_END = LUA + "\nbatch_end(ARGV[1], ARGV[2])\nreturn 1\n"

# ARGV: now, lease seconds, how many. Due ids, each pushed a lease into the future.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), id) end
return ids
"""


class Outbox:
    def __init__(self, r: redis.Redis):
        self.r = r
        self._claim = r.register_script(_CLAIM)
        self._batch_end = r.register_script(BATCH_END)

    def batch_maybe_ended(self, batch_id: str) -> None:
        """A batch closed or canceled with nothing left to run ends now."""
        self._batch_end(args=[batch_id, str(round(time.time(), 3))])

    def claim(self, limit: int = 20, now: float | None = None, lease: float = LEASE_SECONDS) -> list[str]:
        # Due times are written rounded to the millisecond, which may be just ahead of now.
        now = (now if now is not None else time.time()) + 0.001
        ids: list[str] = self._claim(keys=[redis_keys.OUTBOX_DUE], args=[now, lease, limit])
        return ids

    def entry(self, did: str) -> dict[str, str]:
        return decoded(self.r.hgetall(redis_keys.outbox_entry(did)))

    def finish(self, did: str, entry: dict[str, str], outcome: dict[str, Any]) -> None:
        """The delivery ended (delivered, or given up): its state on the subject's record
        (only if the record still exists: a deleted job must not come back), entry gone."""
        p = self.r.pipeline()
        p.zrem(redis_keys.OUTBOX_DUE, did)
        p.delete(redis_keys.outbox_entry(did))
        p.execute()
        self._show(entry, outcome)

    def again(self, did: str, entry: dict[str, str], outcome: dict[str, Any], at: float) -> None:
        p = self.r.pipeline()
        p.hset(redis_keys.outbox_entry(did), "attempts", str(outcome["attempts"]))
        p.zadd(redis_keys.OUTBOX_DUE, {did: at})
        p.execute()
        self._show(entry, outcome)

    def keep_body(self, did: str, body: bytes) -> None:
        self.r.hset(redis_keys.outbox_entry(did), "body", body.decode())

    def _show(self, entry: dict[str, str], outcome: dict[str, Any]) -> None:
        record = entry.get("record")
        if record and self.r.exists(record):
            self.r.hset(record, entry.get("field") or "callback", json.dumps(outcome))

    def pending(self) -> int:
        return int(self.r.zcard(redis_keys.OUTBOX_DUE))
