"""The job store's Lua scripts: each state change is one script, so the check ("may this
job move from its current state?"), the write, the batch counters, the running index and
the completion callback change together. A redelivered task can never finish a job
twice, and batch counts never drift from the items. Used by ``jobs.JobStore`` only.
"""

from __future__ import annotations

from services.contracts import redis_keys
from services.store import outbox

# The state change itself, shared by the transition and begin scripts (a script cannot
# call another). Returns {moved(0/1), previous state or ""}. Keys: redis_keys.LUA (in outbox.LUA).
_MOVE_FN = (
    outbox.LUA
    + """
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
)

# KEYS[1] job hash. ARGV: new state, allowed-from (comma list), now, then field/value pairs.
TRANSITION = (
    _MOVE_FN
    + """
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
return move(KEYS[1], ARGV[1], ARGV[2], ARGV[3], fields)
"""
)

# Counts one more delivery of a job's task and decides what the worker does with it.
# KEYS[1] job hash. ARGV: max deliveries, now, worker id.
# Returns {verdict, deliveries}: "run", "skip" (already finished: a redelivery after
# success must not run again), "busy" (running in a worker whose heartbeat is alive: a
# duplicate message, e.g. restored after a requeue), "exhausted" (the caller fails it as
# worker_lost), "paused" (its batch is paused: the job goes back to pending), "gone".
# On "run" the job is already moved to running, and its hash comes back as a third
# element: one round trip from message to work instead of three.
BEGIN = (
    _MOVE_FN
    + """
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
)


# KEYS[1] job hash, KEYS[2] its batch's channel or "". ARGV: progress, now, job id.
PROGRESS = (
    redis_keys.LUA
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[1], 'updated_at', ARGV[2])
redis.call('PUBLISH', KEYS[1] .. EVENTS, 'progress ' .. ARGV[1])
if KEYS[2] ~= '' then redis.call('PUBLISH', KEYS[2], 'progress ' .. ARGV[3]) end
return 1
"""
)
