"""The batch store's Lua scripts: each checks and changes several keys as one atomic step.

Registered by the store classes that run them (``BatchWindow``: ``CLAIM``, ``MOVE``;
``BatchStore``: ``RESERVE``, ``OWNER_LOAD``). A script's keys come from
services/contracts/redis_keys.py: passed in as KEYS, or built from ``redis_keys.LUA``.
"""

from __future__ import annotations

from services.contracts import redis_keys

# KEYS[1] batch hash, KEYS[2] the queue's list at the batch step. ARGV: window, now,
# queue limit. Moves up to (window - in flight) pending jobs to queued, and no
# more than leave the queue's batch step at its limit, unless the batch is paused or
# canceled; returns id, task, task payload of each.
CLAIM = (
    redis_keys.LUA
    + """
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
)

# KEYS: batch hash, its :names, its :sha. ARGV: "<name>\0<sha256>", sha256, the new job
# ids as stored under :names, then as stored under :sha. Reserves a photo's place in
# one step: {"closed"}, {"existing", prior ids} (the same name and content came before),
# {"duplicate", the ids that process this content}, or {"new"}.
RESERVE = """
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
MOVE = (
    redis_keys.LUA
    + """
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
)

# KEYS: the key's open batches (set), its live jobs outside batches (zset). ARGV: how
# many of the oldest live jobs to look at. Forgets batches that ended or expired and
# live jobs that ended; returns {batches not ended, items not ended}.
OWNER_LOAD = (
    redis_keys.LUA
    + """
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
)
