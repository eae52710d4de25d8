"""What each key stores, as the janitor last surveyed it (``GET /api/v1/usage``).

Listing a blob store is the expensive part of retention, so the numbers come from its
round rather than from a walk per request: they are as old as the last round
(``as_of``), at most ``retention_interval_seconds``. Camera events belong to the
installation, not to a key: they are kept once, under ``EVENTS``, for keys allowed to
read cameras. ``TOTAL`` holds the whole store for the ops page.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from services.contracts import redis_keys

EVENTS = "_events"
TOTAL = "_total"


def write(
    r: redis.Redis,
    *,
    by_owner: dict[str, dict[str, Any]],
    total: dict[str, Any],
    as_of: float,
    ttl_seconds: int,
    previous_owners: set[str],
) -> set[str]:
    """Replace the survey (owners gone since the last one lose their entry); returns the
    owners written, for the next call."""
    p = r.pipeline(transaction=False)
    events: dict[str, Any] = {}
    for owner, kinds in by_owner.items():
        if owner.startswith("camera:"):
            ev = kinds.get("events")
            if ev:
                e = events.setdefault("events", {"bytes": 0, "files": 0, "count": 0, "next_expiry": None, "live": 0})
                for k in ("bytes", "files", "count", "live"):
                    e[k] += ev[k]
                if ev["next_expiry"] is not None:
                    e["next_expiry"] = min(x for x in (e["next_expiry"], ev["next_expiry"]) if x is not None)
            continue
        p.set(redis_keys.usage(owner), json.dumps({"as_of": as_of, "kinds": kinds}), ex=ttl_seconds)
    written = {o for o in by_owner if not o.startswith("camera:")}
    p.set(redis_keys.usage(EVENTS), json.dumps({"as_of": as_of, "kinds": events}), ex=ttl_seconds)
    p.set(redis_keys.usage(TOTAL), json.dumps({"as_of": as_of, **total}), ex=ttl_seconds)
    for gone in previous_owners - written:
        p.delete(redis_keys.usage(gone))
    p.execute()
    return written


def read(r: redis.Redis, owner: str) -> dict[str, Any] | None:
    raw = r.get(redis_keys.usage(owner))
    return json.loads(raw) if raw else None
