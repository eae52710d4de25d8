"""Every Redis key kadr writes or reads, built here and nowhere else.

The gateway, three workers, the janitor and the CLI read and write one keyspace; deployed
data is found by these exact strings, so they are spelled once. Every key starts with
:data:`PREFIX` (``kadr:``); the Lua scripts of the store build theirs from :data:`LUA`,
made here from the same parts. ``TTL`` is the policy; "job TTL" is the setting
``job_ttl_seconds`` the ``JobStore`` is built with (7 days by default).

Jobs (``services/store/jobs.py``: the gateway creates, workers and the feeder move them)::

    kadr:job:<id>                   hash     the job record              job TTL from creation; batch
                                                                         items renewed with their batch
    kadr:job:<id>:events            channel  "<state>", "progress <p>"   (pub/sub: no TTL)
    kadr:job:<id>:children          list     a video's result-set ids    job TTL
    kadr:running                    zset     running id -> start time    none: members leave as jobs end
    kadr:owner:<owner>:jobs         zset     single photos by creation   job TTL, renewed by each create
    kadr:owner:<owner>:videos       zset     videos by upload time       job TTL, renewed by each create
    kadr:owner:<owner>:live         zset     jobs outside batches, not   job TTL, renewed by each create;
                                             yet ended (quotas)          pruned by BatchStore.owner_load

Batches (``services/store/batches.py``; the gateway writes, the feeder and workers move)::

    kadr:batch:<id>                 hash     params, flags, n_<state>    the batch's TTL, renewed by
    kadr:batch:<id>:items           list     every job id, upload order  BatchStore.keep (all six keys
    kadr:batch:<id>:pending         list     ids not yet handed over     of a batch together:
    kadr:batch:<id>:inflight        zset     id -> when handed over      batch_keys)
    kadr:batch:<id>:done            list     the last 200 end times
    kadr:batch:<id>:names           hash     "<name>\\0<sha>" -> ids
    kadr:batch:<id>:sha             hash     sha256 -> {variant: id}
    kadr:batch:<id>:events          channel  "<state> <job id>", "progress <job id>"
    kadr:batches:active             set      batches the reaper feeds    none: retired when finished
    kadr:owner:<owner>:jobs:batches       zset  batches by creation      none: entries leave on delete
    kadr:owner:<owner>:jobs:batches:open  set   batches not yet ended    the batch's TTL; pruned by
                                                                         BatchStore.owner_load
    kadr:idempotency:<owner>:<sha256 of the Idempotency-Key>   string  "<batch id> <body sha>"
                                             (gateway/api/batches.py)    24 h

Outbox (``services/store/outbox.py``: written by the state-change script, read by the janitor)::

    kadr:outbox:due                 zset     delivery id -> when due     none
    kadr:outbox:<delivery id>       hash     one delivery                none: deleted when it ends
    kadr:outbox:once:<job>:<state>  string   end state announced         30 days (set in Lua)

Workers (``services/store/workers.py``: every worker process)::

    kadr:worker:<host:pid>          string   heartbeat JSON              3 heartbeat intervals
    kadr:workers                    zset     worker id -> key's expiry   none: a minute-old one leaves

Cameras (``services/store/camera_events.py``; ``gateway/api/camera_webhook.py``)::

    kadr:camera:events              zset     every event id by time      job TTL; trimmed on each add
    kadr:camera:<camera>:events     zset     one camera's (a zset, not   job TTL; trimmed on each add
                                             a channel)
    kadr:camera:<camera>:buffer     string   ring health (camera worker) 3 publish intervals (>= 3 s)
    kadr:camera:<camera>:seen:<sha256 of the nonce>   string  the event id (gateway)   2 replay windows

Everything else::

    kadr:holds:<owner>              zset     open streams, by lapse time (gateway/holds.py)
                                                                         longest hold + 60 s
    kadr:apikey:<sha256 of key>     string   key record JSON (services/store/apikeys.py,
                                             ``kadr keys``)              none
    kadr:apikeys                    set      every key's hash            none
    kadr:usage:<owner>              string   the janitor's survey (services/store/usage.py)
                                                                         10 retention intervals (>= 10 min)
    kadr:stats:task_seconds:<service>   list "<end ts>:<seconds>" (services/store/task_stats.py)   1 day
    kadr:stats:photo_rates:<device kind> hash  EWMA rates (enhance worker)                     30 days
    kadr:callback-signing-key       string   made once when none is configured (upkeep/delivery.py)  none
    kadr:reaper-lock                string   one reaper round (enhance, segment workers)   PX interval
    kadr:retention-lock             string   one retention round (janitor)               PX interval
    kadr:cache:enhance:<sha256>     string   a cached enhance result, in the *cache* Redis
                                             (services/enhance/jobs.py)  result_cache_ttl_seconds

Pattern: :data:`EVENTS_PATTERN` (``kadr:*:events``), the gateway's one ``PSUBSCRIBE``
(``gateway/fanout.py``) for every job's and batch's channel.

Kombu's own keys (queue lists, ``unacked``, ``unacked_index``) carry no prefix: they are
``services/contracts/tasks.py``'s.
"""

from __future__ import annotations

import hashlib

PREFIX = "kadr:"

# The parts the Lua scripts build keys from (see LUA): nowhere else but in functions below.
_JOB = PREFIX + "job:"
_BATCH = PREFIX + "batch:"
_WORKER = PREFIX + "worker:"
_OUTBOX = PREFIX + "outbox:"
_OUTBOX_ONCE = _OUTBOX + "once:"
_EVENTS, _CHILDREN = ":events", ":children"
_ITEMS, _PENDING, _INFLIGHT, _DONE, _NAMES, _SHA = ":items", ":pending", ":inflight", ":done", ":names", ":sha"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------- jobs


def job(job_id: str) -> str:
    return _JOB + job_id


def job_events(job_id: str) -> str:
    """The job's pub/sub channel."""
    return job(job_id) + _EVENTS


def job_children(job_id: str) -> str:
    """A video's result sets (job ids), in creation order."""
    return job(job_id) + _CHILDREN


RUNNING = PREFIX + "running"


def owner_jobs(owner: str) -> str:
    return f"{PREFIX}owner:{owner}:jobs"


def owner_videos(owner: str) -> str:
    return f"{PREFIX}owner:{owner}:videos"


def owner_live(owner: str) -> str:
    return f"{PREFIX}owner:{owner}:live"


# ---------------------------------------------------------------- batches


def batch(batch_id: str) -> str:
    return _BATCH + batch_id


def batch_items(batch_id: str) -> str:
    return batch(batch_id) + _ITEMS


def batch_pending(batch_id: str) -> str:
    return batch(batch_id) + _PENDING


def batch_inflight(batch_id: str) -> str:
    return batch(batch_id) + _INFLIGHT


def batch_done(batch_id: str) -> str:
    return batch(batch_id) + _DONE


def batch_names(batch_id: str) -> str:
    return batch(batch_id) + _NAMES


def batch_sha(batch_id: str) -> str:
    return batch(batch_id) + _SHA


def batch_events(batch_id: str) -> str:
    """The batch's pub/sub channel."""
    return batch(batch_id) + _EVENTS


def batch_keys(batch_id: str) -> tuple[str, ...]:
    """Every key of a batch (not its channel): what expires and is deleted together."""
    b = batch(batch_id)
    return tuple(b + suffix for suffix in ("", _ITEMS, _PENDING, _INFLIGHT, _DONE, _NAMES, _SHA))


BATCHES_ACTIVE = PREFIX + "batches:active"


def owner_batches(owner: str) -> str:
    """Under the owner's ``:jobs`` key's name, as it has always been written."""
    return owner_jobs(owner) + ":batches"


def owner_open_batches(owner: str) -> str:
    return owner_batches(owner) + ":open"


def batch_idempotency(owner: str, idempotency_key: str) -> str:
    """A batch create's Idempotency-Key, hashed: any bytes, bounded length."""
    return f"{PREFIX}idempotency:{owner}:{_sha256(idempotency_key)}"


# ---------------------------------------------------------------- outbox

OUTBOX_DUE = _OUTBOX + "due"


def outbox_entry(delivery_id: str) -> str:
    return _OUTBOX + delivery_id


def outbox_once(job_id: str, state: str) -> str:
    return f"{_OUTBOX_ONCE}{job_id}:{state}"


# ---------------------------------------------------------------- workers


def worker(worker_id: str) -> str:
    """A worker process's heartbeat (``<host>:<pid>``)."""
    return _WORKER + worker_id


WORKERS = PREFIX + "workers"


# ---------------------------------------------------------------- cameras

CAMERA_EVENTS = PREFIX + "camera:events"


def camera_events(camera_id: str) -> str:
    """One camera's event index (a sorted set, not a channel)."""
    return f"{PREFIX}camera:{camera_id}:events"


def camera_buffer(camera_id: str) -> str:
    return f"{PREFIX}camera:{camera_id}:buffer"


def camera_seen(camera_id: str, nonce: str) -> str:
    """A delivery already accepted: ``nonce`` is what makes it the same event (hashed)."""
    return f"{PREFIX}camera:{camera_id}:seen:{_sha256(nonce)}"


# ---------------------------------------------------------------- everything else


def holds(owner: str) -> str:
    return f"{PREFIX}holds:{owner}"


def apikey(key_hash: str) -> str:
    return f"{PREFIX}apikey:{key_hash}"


APIKEYS = PREFIX + "apikeys"


def usage(owner: str) -> str:
    return f"{PREFIX}usage:{owner}"


def task_seconds(service: str) -> str:
    return f"{PREFIX}stats:task_seconds:{service}"


def photo_rates(device_kind: str) -> str:
    """``device_kind``: ``cpu`` or ``cuda``."""
    return f"{PREFIX}stats:photo_rates:{device_kind}"


CALLBACK_SIGNING_KEY = PREFIX + "callback-signing-key"
REAPER_LOCK = PREFIX + "reaper-lock"
RETENTION_LOCK = PREFIX + "retention-lock"


def enhance_cache(digest: str) -> str:
    """A cached enhance result (in the cache Redis); ``digest``: sha256 of input, params, models."""
    return f"{PREFIX}cache:enhance:{digest}"


EVENTS_PATTERN = PREFIX + "*" + _EVENTS  # every job's and batch's channel


# ---------------------------------------------------------------- Lua


def _lua(text: str) -> str:
    assert "'" not in text and "\\" not in text, text
    return f"'{text}'"


# Put at the head of a script that builds keys: the same keys as the functions above.
LUA = f"""
local RUNNING_KEY, OUTBOX_DUE_KEY = {_lua(RUNNING)}, {_lua(OUTBOX_DUE)}
local function job_key(id) return {_lua(_JOB)} .. id end
local function batch_key(id) return {_lua(_BATCH)} .. id end
local function worker_key(id) return {_lua(_WORKER)} .. id end
local function outbox_key(did) return {_lua(_OUTBOX)} .. did end
local function outbox_once_key(id, state) return {_lua(_OUTBOX_ONCE)} .. id .. ':' .. state end
local EVENTS, PENDING, INFLIGHT, DONE = {_lua(_EVENTS)}, {_lua(_PENDING)}, {_lua(_INFLIGHT)}, {_lua(_DONE)}
"""
