"""Bearer API keys on every /api/v1 route; /healthz, /readyz and docs stay open."""

from __future__ import annotations

import logging
import re

from flask import Flask, g, request

from gateway.context import kadr
from gateway.errors import ApiError
from services.store.apikeys import SCOPES, lookup_key, scopes_of

log = logging.getLogger("kadr.gateway")
LOCAL_OWNER = "local-dev"
# The camera webhook carries the camera's own credential (gateway/api/cameras.py).
CAMERA_WEBHOOK = re.compile(r"/api/v1/camera/[^/]+/events")
# The scope each route needs: (methods or None for any, path pattern, scope), first match.
# A path not listed (e.g. /usage) needs only a valid key.
ROUTE_SCOPES = [
    (None, re.compile(r"/api/v1/(enhance|jobs|batches)(/.*)?"), "photos"),
    (None, re.compile(r"/api/v1/videos(/.*)?"), "video"),
    ({"DELETE"}, re.compile(r"/api/v1/camera/events/[^/]+"), "cameras:manage"),
    (None, re.compile(r"/api/v1/(camera|cameras)(/.*)?"), "cameras:read"),
    (None, re.compile(r"/api/v1/ops(/.*)?"), "ops"),
]


def required_scope(method: str, path: str) -> str | None:
    for methods, pattern, scope in ROUTE_SCOPES:
        if (methods is None or method in methods) and pattern.fullmatch(path):
            return scope
    return None


def has_scope(scope: str) -> bool:
    """Whether the request's key may ``scope`` (every scope with authentication off)."""
    return scope in g.get("scopes", frozenset(SCOPES))


def require_scope(scope: str) -> None:
    """403 ``forbidden_scope`` unless the request's key has ``scope`` (views call this
    where the route alone does not tell, e.g. a video's id given to /jobs)."""
    if not has_scope(scope):
        raise ApiError(
            403,
            "forbidden_scope",
            f"this API key lacks the scope {scope!r}; an operator grants it "
            f"with: kadr keys create NAME --scope {scope}",
            details={"scope": scope},
        )


def install(app: Flask) -> None:
    settings = app.extensions["kadr"].settings
    if settings.auth_disabled:
        for _ in range(3):
            log.warning(
                "!!! AUTHENTICATION IS DISABLED (KADR_AUTH_DISABLED=true): every request "
                "acts as one local owner. Never expose this gateway. !!!"
            )

    @app.before_request
    def _authenticate() -> None:
        if not request.path.startswith("/api/v1/"):
            return None
        if request.method == "POST" and CAMERA_WEBHOOK.fullmatch(request.path):
            return None
        if kadr().settings.auth_disabled:
            g.owner = LOCAL_OWNER
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError(
                401,
                "unauthorized",
                "missing API key: send 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": 'Bearer realm="kadr"'},
            )
        record = lookup_key(kadr().redis, key.strip())
        if record is None:
            raise ApiError(
                401,
                "unauthorized",
                "unknown or revoked API key",
                headers={"WWW-Authenticate": 'Bearer realm="kadr", error="invalid_token"'},
            )
        g.owner = record["id"]
        g.api_key = key.strip()  # open streams re-check it (gateway/sse.py)
        g.scopes = scopes_of(record)
        scope = required_scope(request.method, request.path)
        if scope is not None:
            require_scope(scope)
        return None
