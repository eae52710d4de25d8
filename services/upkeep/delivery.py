"""Delivering the outbox: completion callbacks of photos, videos and batches, and camera
events' webhooks. Runs in the janitor process (services/ops/janitor.py), a few at a time.

Each delivery is a POST of a JSON body, signed like every kadr webhook (HMAC-SHA256 over
``timestamp.body`` in ``X-Kadr-Signature``, the timestamp in ``X-Kadr-Timestamp``), with
the key's callback secret (``GET /api/v1/callbacks/secret``) or the camera's secret. A
2xx ends it; a 3xx is not followed and ends it as failed (the Location is reported); a 4xx
other than 408/429 ends it as failed (the receiver refuses it); anything else, and a
connection error, is retried with doubling backoff up to ``callback_attempts`` times.
The body is built at the first attempt and kept, so every attempt sends the same one.
The state shows on the record as ``callback`` (``webhook`` for camera events):
``pending`` / ``delivered`` / ``failed`` with attempts, status or error.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, cast

import redis

from services.contracts import redis_keys
from services.contracts.camera_auth import signed_headers
from services.contracts.records import AnyJob, Batch, EventJob
from services.store.batches import BatchStore
from services.store.jobs import JobStore
from services.store.outbox import LEASE_SECONDS, Outbox
from services.upkeep.callbacks import CallbackRefused, Resolver, check, networks, post, resolve

log = logging.getLogger("kadr.callbacks")
_EVERYWHERE = networks(["0.0.0.0/0", "::/0"])
_HIDDEN_RESULT = ("blob",)


def key_secret(r: redis.Redis, settings: Any, owner: str) -> str:
    """A key's callback secret: derived from the installation's signing key, so nothing
    per key is stored and revoking a key needs nothing here. The signing key comes from
    ``KADR_CALLBACK_SIGNING_KEY`` or is made once and kept in Redis."""
    configured = settings.callback_signing_key
    base = configured.get_secret_value() if configured is not None else None
    if not base:
        r.set(redis_keys.CALLBACK_SIGNING_KEY, secrets.token_hex(32), nx=True)
        base = cast(str, r.get(redis_keys.CALLBACK_SIGNING_KEY))  # set just above (NX) if absent
    return hmac.new(base.encode(), f"callbacks:{owner}".encode(), hashlib.sha256).hexdigest()


def job_body(job: AnyJob | None, ident: str, state: str) -> dict[str, Any]:
    if job is None:  # deleted before its callback went out
        return {"type": "job.ended", "id": ident, "state": state, "deleted": True}
    kind = job["kind"]
    links = {"self": f"/api/v1/jobs/{ident}"}
    if kind == "segment":
        links = {"self": f"/api/v1/videos/{ident}"}
    elif kind == "stabilize":
        links["video"] = f"/api/v1/videos/{job['params'].get('video_id')}"
    elif state == "succeeded":
        links["result"] = f"/api/v1/jobs/{ident}/result"
    result = {k: v for k, v in (job["result"] or {}).items() if k not in _HIDDEN_RESULT} or None
    return {
        "type": {"segment": "video.ended", "stabilize": "result_set.ended"}.get(kind, "job.ended"),
        "id": ident,
        "kind": kind,
        "state": state,
        "created_at": job["created_at"],
        "finished_at": job["finished_at"],
        "result": result,
        "error": job["error"],
        "links": links,
    }


def batch_body(batch: Batch | None, ident: str) -> dict[str, Any]:
    if batch is None:
        return {"type": "batch.ended", "id": ident, "deleted": True}
    base = f"/api/v1/batches/{ident}"
    return {
        "type": "batch.ended",
        "id": ident,
        "name": batch.get("name") or "",
        "state": batch["state"],
        "total": batch["total"],
        "counts": batch["counts"],
        "created_at": batch["created_at"],
        "closed_at": batch.get("closed_at"),
        "links": {
            "self": base,
            "items": f"{base}/items",
            "archive": f"{base}/archive",
            "manifest_csv": f"{base}/manifest.csv",
        },
    }


def event_body(job: EventJob | None, ident: str, state: str) -> dict[str, Any]:
    links = {"self": f"/api/v1/camera/events/{ident}"}
    if job is None:  # deleted before its callback went out
        return {
            "id": ident,
            "camera": None,
            "state": state,
            "params": {},
            "result": None,
            "error": None,
            "links": links,
        }
    params = job["params"]
    return {
        "id": ident,
        "camera": params.get("camera"),
        "state": job["state"],
        "params": params,
        "result": job["result"],
        "error": job["error"],
        "links": links,
    }


class Deliverer:
    def __init__(
        self,
        r: redis.Redis,
        settings: Any,
        *,
        resolver: Resolver = resolve,
        on_outcome: Callable[[str, dict[str, Any]], object] | None = None,
    ):
        self.r, self.s, self.resolver = r, settings, resolver
        self.on_outcome = on_outcome or (lambda subject, outcome: None)
        self.outbox = Outbox(r)
        self.jobs = JobStore(r, settings.job_ttl_seconds)
        self.batches = BatchStore(self.jobs)
        self.allow = networks(settings.callback_allow_networks)
        self._secrets: dict[str, str] = {}

    def tick(self, limit: int = 20) -> int:
        """Deliver what is due now; returns how many were tried. The claim's lease covers
        every one of them timing out, so a second janitor never takes one still in hand."""
        lease = max(LEASE_SECONDS, limit * (self.s.callback_timeout_seconds + 1) + 30)
        ids = self.outbox.claim(limit, lease=lease)
        for did in ids:
            try:
                self.deliver(did)
            except redis.RedisError:
                raise  # the round fails; the lease brings it back
            except Exception:  # one bad entry must not stop the others
                log.exception("callback delivery crashed", extra={"delivery": did})
        return len(ids)

    def _body(self, did: str, e: dict[str, str]) -> bytes:
        if e.get("body"):
            return e["body"].encode()
        subject, ident, state = e["subject"], e["id"], e["state"]
        if subject == "batch":
            doc = batch_body(self.batches.get(ident, rate=False), ident)
        elif subject == "event":
            doc = event_body(self.jobs.get(ident), ident, state)
        else:
            doc = job_body(self.jobs.get(ident), ident, state)
        body = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
        self.outbox.keep_body(did, body)
        return body

    def _secret(self, e: dict[str, str]) -> str | None:
        if e["subject"] == "event":
            cam = self.s.camera(e["owner"].removeprefix("camera:"))
            return cam.secret.get_secret_value() if cam is not None else None
        if e["owner"] not in self._secrets:  # derived once per key, not two Redis reads a delivery
            self._secrets[e["owner"]] = key_secret(self.r, self.s, e["owner"])
        return self._secrets[e["owner"]]

    def deliver(self, did: str) -> dict[str, Any] | None:
        e = self.outbox.entry(did)
        if not e:
            self.r.zrem(redis_keys.OUTBOX_DUE, did)
            return None
        attempts = int(e.get("attempts") or 0) + 1
        base = {"url": e["url"], "attempts": attempts, "last_attempt_at": round(time.time(), 3)}
        secret = self._secret(e)
        if secret is None:
            return self._end(did, e, {**base, "state": "failed", "error": "its camera is no longer configured"})
        body = self._body(did, e)
        try:
            dest = check(e["url"], _EVERYWHERE if e.get("trusted") == "1" else self.allow, resolver=self.resolver)
            status, location = post(
                dest,
                body,
                {"Content-Type": "application/json", **signed_headers(secret, body, time.time())},
                timeout=self.s.callback_timeout_seconds,
            )
        except CallbackRefused as err:  # the name now resolves somewhere it may not go
            return self._end(did, e, {**base, "state": "failed", "error": f"{err.code}: {err.message}"})
        except Exception as err:  # connection refused, timeout, TLS: worth another try
            return self._retry(did, e, {**base, "state": "pending", "error": f"{type(err).__name__}: {err}"[:300]})
        if status < 300:
            return self._end(did, e, {**base, "state": "delivered", "status": status})
        if status < 400:
            return self._end(
                did,
                e,
                {
                    **base,
                    "state": "failed",
                    "status": status,
                    "error": f"HTTP {status} to {location[:200] or '?'}: redirects are not followed",
                },
            )
        if status < 500 and status not in (408, 429):
            return self._end(
                did,
                e,
                {**base, "state": "failed", "status": status, "error": f"HTTP {status}: the receiver refused it"},
            )
        return self._retry(did, e, {**base, "state": "pending", "status": status, "error": f"HTTP {status}"})

    def _end(self, did: str, e: dict[str, str], outcome: dict[str, Any]) -> dict[str, Any]:
        self.outbox.finish(did, e, outcome)
        self.on_outcome(e["subject"], outcome)
        level = logging.INFO if outcome["state"] == "delivered" else logging.WARNING
        log.log(
            level,
            "callback %s",
            outcome["state"],
            extra={"delivery": did, "attempts": outcome["attempts"], "error": outcome.get("error", "")},
        )
        return outcome

    def _retry(self, did: str, e: dict[str, str], outcome: dict[str, Any]) -> dict[str, Any]:
        if outcome["attempts"] >= self.s.callback_attempts:
            return self._end(did, e, {**outcome, "state": "failed"})
        delay = self.s.callback_backoff_seconds * 2 ** (outcome["attempts"] - 1)
        outcome["next_attempt_at"] = round(time.time() + delay, 3)
        self.outbox.again(did, e, outcome, time.time() + delay)
        self.on_outcome(e["subject"], outcome)
        return outcome
