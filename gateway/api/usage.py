"""What a key stores and when it goes (``GET /api/v1/usage``), and the secret its
completion callbacks are signed with (``GET /api/v1/callbacks/secret``).

The numbers are the janitor's last survey (services/store/usage.py), at most one
retention interval old; ``as_of`` says when. Camera events belong to the installation:
keys that may read cameras see them under ``events``.
"""

from __future__ import annotations

import redis
from flask import Response, g, jsonify
from flask_openapi3.blueprint import APIBlueprint
from flask_openapi3.models.tag import Tag

from gateway.auth import has_scope
from gateway.context import kadr
from gateway.errors import ApiError
from gateway.responses import CallbackSecret, ErrorBody, UsageView
from services.contracts.camera_auth import SIGNATURE_HEADER, TIMESTAMP_HEADER
from services.store import usage as usage_store
from services.upkeep.delivery import key_secret

bp = APIBlueprint("usage", __name__, url_prefix="/api/v1", abp_tags=[Tag(name="usage")], abp_security=[{"bearer": []}])

EMPTY = {"bytes": 0, "files": 0, "count": 0, "live": 0, "next_expiry": None}


@bp.get(
    "/usage",
    summary="Bytes and counts this key stores per kind, and when the next of each expires",
    responses={200: UsageView, 401: ErrorBody, 503: ErrorBody},
)
def get_usage() -> Response:
    k = kadr()
    s = k.settings
    try:
        mine = usage_store.read(k.redis, g.owner) or {}
        total = usage_store.read(k.redis, usage_store.TOTAL) or {}
        events = usage_store.read(k.redis, usage_store.EVENTS) or {} if has_scope("cameras:read") else None
    except redis.RedisError as e:
        raise ApiError(503, "redis_unavailable", f"Redis is not answering: {e}", headers={"Retry-After": "5"})
    kinds = {kind: {**EMPTY, **(mine.get("kinds") or {}).get(kind, {})} for kind in ("photos", "batches", "videos")}
    ttl = {
        "photos": s.retention_photos_seconds,
        "videos": s.retention_videos_seconds,
        "batches": s.job_ttl_seconds,
        "events": s.retention_events_seconds,
    }
    if events is not None:
        kinds["events"] = {**EMPTY, **(events.get("kinds") or {}).get("events", {})}
    else:
        ttl.pop("events")
    return jsonify(
        {
            # None until the janitor's first round (or while it is down for long).
            "as_of": total.get("as_of"),
            "kinds": kinds,
            "total_bytes": sum(v["bytes"] for v in kinds.values()),
            "ttl_seconds": ttl,
            "store": {
                "free_bytes": total.get("free_bytes"),
                "free_floor_bytes": s.storage_free_floor_bytes,
                "budget_bytes": s.storage_budget_bytes,
            },
        }
    )


@bp.get(
    "/callbacks/secret",
    summary="This key's secret for checking completion callbacks' signatures",
    responses={200: CallbackSecret, 401: ErrorBody},
)
def get_callback_secret() -> Response:
    k = kadr()
    return jsonify(
        {
            "secret": key_secret(k.redis, k.settings, g.owner),
            "signature_header": SIGNATURE_HEADER,
            "timestamp_header": TIMESTAMP_HEADER,
            "scheme": "sha256=hex(HMAC-SHA256(secret, timestamp + '.' + body))",
        }
    )
