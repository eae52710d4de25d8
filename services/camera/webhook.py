"""Delivering a finished camera event to the camera's ``webhook_url``: signed, retried
with backoff, never redirected.

A redirect is not followed: the request carries the camera's HMAC signature over the
body, and a 307/308 to another host would hand both to whoever the receiver (or someone
who took over its name) points at. A 3xx is reported as undelivered, with the
``Location`` it named, and not retried: the operator fixes the URL.
"""
from __future__ import annotations

import time
from typing import Callable

import requests

from services.common.camera_auth import signed_headers


def deliver(url: str, body: bytes, secret: str, *, attempts: int, backoff_seconds: float,
            timeout_seconds: float, sleep: Callable[[float], None] = time.sleep) -> dict:
    """POST ``body`` to ``url``; returns what the job records: ``{"delivered", "attempts",
    "status"}`` or ``{"delivered": False, "attempts", "error"}``."""
    delay, last, attempt = backoff_seconds, "", 0
    for attempt in range(1, attempts + 1):
        headers = {"Content-Type": "application/json", **signed_headers(secret, body, time.time())}
        try:
            resp = requests.post(url, data=body, headers=headers, timeout=timeout_seconds, allow_redirects=False)
            if resp.status_code < 300:
                return {"delivered": True, "attempts": attempt, "status": resp.status_code}
            if 300 <= resp.status_code < 400:
                last = f"HTTP {resp.status_code} to {resp.headers.get('Location', '?')[:200]}: redirects are not followed"
                break
            last = f"HTTP {resp.status_code}"
            if 400 <= resp.status_code < 500 and resp.status_code not in (408, 429):
                break  # the receiver refuses it: retrying changes nothing
        except requests.RequestException as e:
            last = f"{type(e).__name__}: {e}"
        if attempt < attempts:
            sleep(delay)
            delay *= 2
    return {"delivered": False, "attempts": attempt, "error": last[:300]}
