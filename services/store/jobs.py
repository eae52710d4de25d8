"""Job store in Redis: every accepted request is a job; batches group jobs.

A job is a Redis hash of JSON-safe strings, decoded here once into a typed record
(``services/contracts/records.py``). State changes go through the Lua scripts of
``job_scripts.py``. Designed for batches of 10,000+ items: items are a Redis list of
ids, counts are hash counters, nothing is rewritten whole.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import redis

from services.contracts import redis_keys
from services.contracts.records import AnyJob, Estimate
from services.store import job_scripts
from services.store.connection import decoded

# pending: a batch item not yet handed to a queue (batches feed a window at a time);
# skipped: a batch item whose identical content another item of the batch processes.
STATES = ("pending", "queued", "running", "succeeded", "failed", "skipped", "canceled")
TERMINAL = frozenset({"succeeded", "failed", "skipped", "canceled"})
ACTIVE = frozenset({"queued", "running"})
_JSON_FIELDS = ("params", "input", "result", "error", "estimate", "callback", "webhook")


def now() -> float:
    return round(time.time(), 3)


def new_id() -> str:
    return str(uuid.uuid4())


def encode_fields(fields: dict[str, Any]) -> dict[str, str]:
    """A job or batch record as hash fields: JSON for the structured ones, "" for None."""
    out = {}
    for k, v in fields.items():
        if k in _JSON_FIELDS:
            out[k] = json.dumps(v, separators=(",", ":"), allow_nan=False)
        elif v is None:
            out[k] = ""
        else:
            out[k] = str(v)
    return out


def decode_fields(raw: dict[str, str]) -> dict[str, Any]:
    """A job or batch hash back to values: JSON parsed, times as floats."""
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


# What a record written before a field existed reads as, so every declared field is there.
_DEFAULTS: dict[str, Any] = {
    "progress": 0.0,
    "started_at": None,
    "finished_at": None,
    "params": {},
    "input": None,
    "result": None,
    "error": None,
    "batch_id": "",
    "request_id": "",
    "deliveries": 0,
    "worker": "",
    "parent_id": "",
    "estimate": None,
    "callback_url": "",
    "callback_subject": "",
}


def decode_job(raw: dict[str, str]) -> AnyJob:
    job = {**_DEFAULTS, **decode_fields(raw)}
    if job["progress"] is None:
        job["progress"] = 0.0
    # The fields create() wrote (or their defaults), each decoded to its declared type.
    return cast(AnyJob, job)


@dataclass
class Transition:
    moved: bool
    previous: str


class JobStore:
    def __init__(self, client: redis.Redis, ttl_seconds: int = 7 * 24 * 3600):
        self.r = client
        self.ttl = ttl_seconds
        self._transition = self.r.register_script(job_scripts.TRANSITION)
        self._begin = self.r.register_script(job_scripts.BEGIN)
        self._progress = self.r.register_script(job_scripts.PROGRESS)

    # keys (services/contracts/redis_keys.py)
    job_key = staticmethod(redis_keys.job)
    batch_key = staticmethod(redis_keys.batch)
    owner_key = staticmethod(redis_keys.owner_jobs)
    videos_key = staticmethod(redis_keys.owner_videos)  # a key's videos by upload time (GET /api/v1/videos)
    # A key's jobs outside batches that may not have ended yet (pruned as they end).
    live_key = staticmethod(redis_keys.owner_live)

    # jobs
    def create(
        self,
        *,
        kind: str,
        owner: str,
        params: dict[str, Any],
        input: dict[str, Any] | None = None,
        batch_id: str = "",
        request_id: str = "",
        job_id: str | None = None,
        parent_id: str = "",
        pipe: redis.client.Pipeline | None = None,
        estimate: Estimate | None = None,
        callback_url: str = "",
        callback_subject: str = "",
    ) -> AnyJob:
        job_id = job_id or new_id()
        t = now()
        job: AnyJob = {
            "id": job_id,
            "kind": kind,
            "owner": owner,
            "state": "queued",
            "progress": 0.0,
            "created_at": t,
            "updated_at": t,
            "started_at": None,
            "finished_at": None,
            "params": params,
            "input": input,
            "result": None,
            "error": None,
            "batch_id": batch_id,
            "request_id": request_id,
            "deliveries": 0,
            "worker": "",
            "parent_id": parent_id,
            "estimate": estimate,
            "callback_url": callback_url,
            "callback_subject": callback_subject,
        }
        p = pipe if pipe is not None else self.r.pipeline()
        key = self.job_key(job_id)
        # redis-py's ``mapping`` is a Mapping keyed by any encodable type, and Mapping's key is
        # invariant: no dict[str, str] fits it, though every one is a valid argument.
        p.hset(key, mapping=encode_fields(dict(job)))  # type: ignore[arg-type]
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
        elif kind == "segment":
            indexes.append(self.videos_key(owner))  # GET /videos
        elif not batch_id and kind == "enhance":
            # GET /jobs: single photos. A camera event is listed by its camera's index.
            indexes.append(self.owner_key(owner))
        for index in indexes:
            p.zadd(index, {job_id: t})
            p.expire(index, self.ttl)
        if pipe is None:
            p.execute()
        return job

    def get(self, job_id: str) -> AnyJob | None:
        raw = decoded(self.r.hgetall(self.job_key(job_id)))
        return decode_job(raw) if raw else None

    def get_many(self, job_ids: list[str]) -> list[AnyJob | None]:
        p = self.r.pipeline(transaction=False)
        for j in job_ids:
            p.hgetall(self.job_key(j))
        return [decode_job(r) if r else None for r in p.execute()]

    def get_owned(self, job_id: str, owner: str) -> AnyJob | None:
        """A job another key created is reported as absent, not forbidden: ids don't leak."""
        job = self.get(job_id)
        if job is None or job.get("owner") != owner:
            return None
        return job

    def transition(self, job_id: str, to: str, *, allowed_from: Iterable[str], **fields: Any) -> Transition:
        if to in TERMINAL:
            fields.setdefault("finished_at", now())
            if to == "succeeded":
                fields.setdefault("progress", 1.0)
        enc = encode_fields(fields)
        args = [to, ",".join(allowed_from), str(now())]
        for k, v in enc.items():
            args += [k, v]
        moved, prev = self._transition(keys=[self.job_key(job_id)], args=args)
        return Transition(bool(moved), prev)

    def begin(self, job_id: str, *, max_deliveries: int, worker: str) -> tuple[str, int, AnyJob | None]:
        """(verdict, deliveries, job): see ``job_scripts.BEGIN``; on "run" the job as it now is
        (running, in this worker), else None."""
        verdict, n, *rest = self._begin(keys=[self.job_key(job_id)], args=[max_deliveries, now(), worker])
        job = None
        if verdict == "run" and rest:
            flat = rest[0]
            job = decode_job(dict(zip(flat[::2], flat[1::2])))
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
        self._progress(
            keys=[self.job_key(job_id), redis_keys.batch_events(batch_id) if batch_id else ""],
            args=[p, str(now()), job_id],
        )

    def children(self, parent_id: str) -> list[AnyJob]:
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

    def list_owned(self, owner: str, *, offset: int = 0, limit: int = 50) -> list[AnyJob]:
        ids = decoded(self.r.zrevrange(self.owner_key(owner), offset, offset + limit - 1))
        return [j for j in self.get_many(ids) if j is not None]

    def list_videos(self, owner: str, *, offset: int = 0, limit: int = 50) -> tuple[list[AnyJob], int]:
        """A page of the key's videos, newest first, and how many it has."""
        p = self.r.pipeline(transaction=False)
        p.zrevrange(self.videos_key(owner), offset, offset + limit - 1)
        p.zcard(self.videos_key(owner))
        ids, total = p.execute()
        return [j for j in self.get_many(ids) if j is not None], int(total)
