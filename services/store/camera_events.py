"""Camera events and buffer health in Redis, shared by the gateway and the camera worker.

Events are job records (``JobStore``, kind ``camera_event``, owner ``camera:<id>``);
this module keeps their indexes, sorted by event time: one per camera and one for the
installation, trimmed to the job TTL. Buffer health is written by the camera worker
(which holds the rings) every second under a short-lived key per camera, and read by
``GET /api/v1/cameras``: a worker that stops shows as no buffer, not stale numbers.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from services.contracts import redis_keys

EVENT_KIND = "camera_event"


def owner_of(camera_id: str) -> str:
    return f"camera:{camera_id}"


def index_event(pipe: redis.client.Pipeline, camera_id: str, event_id: str, ts: float, ttl_seconds: int) -> None:
    """Add to both indexes (in the caller's MULTI, with the record itself)."""
    floor = time.time() - ttl_seconds
    for key in (redis_keys.CAMERA_EVENTS, redis_keys.camera_events(camera_id)):
        pipe.zadd(key, {event_id: ts})
        pipe.zremrangebyscore(key, "-inf", floor)  # records older than this have expired
        pipe.expire(key, ttl_seconds)


def list_event_ids(
    r: redis.Redis, *, camera_id: str | None, since: float | None, until: float | None, offset: int, limit: int
) -> tuple[list[str], int]:
    """Ids newest first (by event time) and the number matching the filter."""
    key = redis_keys.camera_events(camera_id) if camera_id else redis_keys.CAMERA_EVENTS
    hi = "+inf" if until is None else until
    lo = "-inf" if since is None else since
    p = r.pipeline(transaction=False)
    p.zrevrangebyscore(key, hi, lo, start=offset, num=limit)
    p.zcount(key, lo, hi)
    ids, total = p.execute()
    return ids, int(total)


def publish_buffer(r: redis.Redis, camera_id: str, health: dict[str, Any], ttl: float) -> None:
    r.set(redis_keys.camera_buffer(camera_id), json.dumps(health, allow_nan=False), px=int(ttl * 1000))


def read_buffers(r: redis.Redis, camera_ids: list[str]) -> dict[str, dict[str, Any] | None]:
    if not camera_ids:
        return {}
    raw = r.mget([redis_keys.camera_buffer(c) for c in camera_ids])
    return {c: (json.loads(v) if v else None) for c, v in zip(camera_ids, raw)}
