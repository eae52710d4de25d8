"""How a camera proves a webhook is its own: pure functions, no Flask, no Redis.

Cameras do not hold API keys; each has its own secret in its camera config:

- ``hmac``: the camera sends ``X-Kadr-Timestamp: <epoch seconds>`` and
  ``X-Kadr-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>``.
  The timestamp must be within the replay window (5 minutes by default) of the
  server's clock, so a captured request cannot be replayed later, and the raw body
  is signed as sent, so no field (or image) can be changed in flight.
- ``token``: for cameras that can only call a URL: the secret itself in the
  ``X-Kadr-Token`` header or the ``?token=`` query parameter (use HTTPS: a token
  in a URL ends up in logs of whatever sits in between).

Every comparison of a secret-derived value goes through ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Mapping

TIMESTAMP_HEADER = "X-Kadr-Timestamp"
SIGNATURE_HEADER = "X-Kadr-Signature"
TOKEN_HEADER = "X-Kadr-Token"
TOKEN_QUERY = "token"
DEFAULT_WINDOW_SECONDS = 300


class CameraAuthError(Exception):
    """The credential is missing, malformed, wrong or stale (answered 401)."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Kadr-Signature`` value a camera sends for ``body`` at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_headers(secret: str, body: bytes, now: float) -> dict[str, str]:
    """Headers for a signed request (what a camera, or a test, sends)."""
    ts = f"{now:.3f}"
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: signature(secret, ts, body)}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # plain dicts in tests: look case-insensitively
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), None)
    return value


def verify_hmac(
    secret: str, headers: Mapping[str, str], body: bytes, *, now: float, window_seconds: float = DEFAULT_WINDOW_SECONDS
) -> None:
    ts_raw = _header(headers, TIMESTAMP_HEADER)
    sig = _header(headers, SIGNATURE_HEADER)
    if not ts_raw or not sig:
        raise CameraAuthError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    try:
        ts = float(ts_raw)
    except ValueError:
        raise CameraAuthError(f"{TIMESTAMP_HEADER} is not a number of seconds") from None
    if not math.isfinite(ts) or abs(now - ts) > window_seconds:
        raise CameraAuthError(
            f"{TIMESTAMP_HEADER} is outside the {int(window_seconds)} s window (replayed request or camera clock off)"
        )
    expected = signature(secret, ts_raw, body)
    if not hmac.compare_digest(expected.encode(), sig.strip().encode("utf-8", "replace")):
        raise CameraAuthError("signature does not match the body")


def verify_token(secret: str, headers: Mapping[str, str], query: Mapping[str, str]) -> None:
    token = _header(headers, TOKEN_HEADER) or query.get(TOKEN_QUERY)
    if not token:
        raise CameraAuthError(f"missing {TOKEN_HEADER} header or ?{TOKEN_QUERY}= parameter")
    if not hmac.compare_digest(secret.encode(), token.encode("utf-8", "replace")):
        raise CameraAuthError("wrong token")


def verify(
    mode: str,
    secret: str,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
) -> None:
    """Raise ``CameraAuthError`` unless the request carries the camera's credential."""
    if mode == "hmac":
        verify_hmac(secret, headers, body, now=now, window_seconds=window_seconds)
    elif mode == "token":
        verify_token(secret, headers, query)
    else:
        raise CameraAuthError(f"unknown auth mode {mode!r}")
