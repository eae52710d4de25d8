"""Messages stranded in kombu's ``unacked`` hash by a broker connection loss.

kombu's Redis transport moves every message it delivers into the ``unacked`` hash (with
its delivery time in ``unacked_index``) until the worker acks it. When the connection
drops, the worker forgets what it had received and kombu tries to put those messages
back on their queue, over the connection that just died: while Redis is restarting
that fails, and the message stays in ``unacked`` until the visibility timeout (an hour)
brings it back. Its job sits ``queued`` all that time, and a batch waiting on it never
ends. (Seen in the suite: a Redis restart mid-batch left 2 of 24 items like that.)

A live worker begins a job within moments of receiving its message (prefetch 1, acks
late: a message is only received for a free pool process), so a message delivered
longer ago than ``older_than`` whose job is still ``queued`` is held by nobody. It goes
back to the head of its queue, as kombu's own restore would have put it. Should a worker
still hold it after all, the copy is harmless: ``JobStore.begin`` runs a job once.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any, cast

from services.contracts.tasks import BATCH, INTERACTIVE, QUEUES, UNACKED_INDEX_KEY, UNACKED_KEY, queue_key
from services.platform.metrics import STRANDED_RESTORED
from services.store.jobs import JobStore

log = logging.getLogger("kadr.reaper")

# Only if the message is still unacked (an ack racing us wins), in one step.
_RESTORE = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[2])
return 1
"""


def job_id_of(payload: dict[str, Any]) -> str | None:
    """The job a Celery message is for: kadr's tasks take one dict argument with ``job_id``."""
    try:
        body = payload["body"]
        if payload.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return args[0]["job_id"] if args and isinstance(args[0], dict) else None
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def restore_stranded(store: JobStore, *, older_than: float, now: float | None = None) -> list[str]:
    """One pass; returns the ids of the jobs whose message went back on its queue."""
    now = time.time() if now is None else now
    r = store.r
    restored = []
    # Decoded (member, score) pairs: redis-py types the reply as the union of with and without scores.
    for tag, delivered_at in cast(
        list[tuple[str, float]], r.zrangebyscore(UNACKED_INDEX_KEY, "-inf", now - older_than, withscores=True)
    ):
        raw = r.hget(UNACKED_KEY, tag)
        if raw is None:
            continue
        try:
            payload, _exchange, queue = json.loads(raw)
        except ValueError:
            continue
        job_id = job_id_of(payload)
        if queue not in QUEUES or job_id is None:
            continue
        job = store.get(job_id)
        if job is None or job["state"] != "queued":
            continue  # running (its worker acks it), ended or gone: nothing waits on it
        # As kombu marks a message it restores.
        payload.setdefault("headers", {})["redelivered"] = True
        payload.setdefault("properties", {}).setdefault("delivery_info", {})["redelivered"] = True
        # Back to the list of its own priority step, as kombu's restore does.
        key = queue_key(queue, BATCH if (payload.get("properties") or {}).get("priority") == BATCH else INTERACTIVE)
        if r.eval(_RESTORE, 3, UNACKED_KEY, UNACKED_INDEX_KEY, key, tag, json.dumps(payload)):
            STRANDED_RESTORED.labels(queue=queue).inc()
            restored.append(job_id)
            log.warning(
                "message held by no worker put back on its queue",
                extra={"job_id": job_id, "queue": queue, "delivered_seconds_ago": round(now - delivered_at, 1)},
            )
    return restored
