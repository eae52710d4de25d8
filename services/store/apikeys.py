"""API keys: shown once at creation, stored only as a SHA-256 hash.

A key is 256 random bits, so a plain (unsalted) hash is enough: nothing to brute-force.
The owner id stamped on jobs is the key's short id, never the key or its hash.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Any

import redis

from services.contracts import redis_keys
from services.store.connection import decoded

KEY_PREFIX = "kadr_"
# What a key may do. photos: single photos, jobs and batches; video: videos and their
# result sets; cameras:read: cameras and their events; cameras:manage: delete events;
# ops: the ops page's view of queues, workers and memory. Every key may read its usage.
SCOPES = ("photos", "video", "cameras:read", "cameras:manage", "ops")


def scopes_of(record: dict[str, Any]) -> frozenset[str]:
    """A key made before scopes existed keeps what it could always do: everything."""
    return frozenset(record.get("scopes") or SCOPES)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    r: redis.Redis, name: str, scopes: list[str] | tuple[str, ...] | None = None
) -> tuple[str, dict[str, Any]]:
    """A new key with ``scopes`` (all of them when None)."""
    wanted = list(SCOPES if scopes is None else dict.fromkeys(scopes))
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown or not wanted:
        raise ValueError(
            f"unknown scope(s) {unknown}; choose from {', '.join(SCOPES)}"
            if unknown
            else "a key needs at least one scope"
        )
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = {"id": secrets.token_hex(8), "name": name, "created_at": round(time.time(), 3), "scopes": wanted}
    r.set(redis_keys.apikey(_hash(key)), json.dumps(record))
    r.sadd(redis_keys.APIKEYS, _hash(key))
    return key, record


def lookup_key(r: redis.Redis, key: str) -> dict[str, Any] | None:
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    raw = r.get(redis_keys.apikey(_hash(key)))
    return json.loads(raw) if raw else None


def list_keys(r: redis.Redis) -> list[dict[str, Any]]:
    hashes = sorted(decoded(r.smembers(redis_keys.APIKEYS)))
    raws = r.mget([redis_keys.apikey(h) for h in hashes]) if hashes else []
    return [json.loads(x) for x in raws if x]


def revoke_key(r: redis.Redis, key_id: str) -> bool:
    for h in decoded(r.smembers(redis_keys.APIKEYS)):
        raw = r.get(redis_keys.apikey(h))
        if raw and json.loads(raw)["id"] == key_id:
            r.delete(redis_keys.apikey(h))
            r.srem(redis_keys.APIKEYS, h)
            return True
    return False
