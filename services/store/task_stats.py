"""Recent task run times per service, kept in Redis for the autoscaler.

Prometheus has the full histograms, but the autoscaler must work without Prometheus
(``make up`` runs none): each finished task appends ``"<end ts>:<seconds>"`` to a short
per-service list. Only entries from the last ``window`` seconds count, so one slow
hour does not keep the average high after the load has changed.
"""

from __future__ import annotations

import time

import redis

from services.contracts import redis_keys
from services.contracts.photo_cost import rate_key

KEEP = 100


def record(r: redis.Redis, service: str, seconds: float, now: float | None = None) -> None:
    now = time.time() if now is None else now
    key = redis_keys.task_seconds(service)
    try:
        # A pipeline's command returns the pipeline, which redis-py types as the client's reply (an int).
        (r.pipeline().lpush(key, f"{now:.3f}:{seconds:.4f}").ltrim(key, 0, KEEP - 1).expire(key, 86400).execute())  # type: ignore[attr-defined]
    except redis.RedisError:
        pass  # a statistic, never a reason to fail the task that just finished


def recent_mean(r: redis.Redis, service: str, window: float = 600.0, now: float | None = None) -> float | None:
    now = time.time() if now is None else now
    values = []
    for raw in r.lrange(redis_keys.task_seconds(service), 0, KEEP - 1):
        ts, _, secs = (raw.decode() if isinstance(raw, bytes) else raw).partition(":")
        if now - float(ts) <= window:
            values.append(float(secs))
    return sum(values) / len(values) if values else None


# Photo rates: what a photo costs on the machines that ran the last ones (EWMA per
# device kind: redis_keys.photo_rates), for the gateway's estimates and time limits (contracts.photo_cost).
PHOTO_RATE_WEIGHT = 0.3  # weight of the newest photo in the moving average
_EWMA = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
local new = tonumber(ARGV[2])
if old then new = tonumber(old) * (1 - tonumber(ARGV[3])) + new * tonumber(ARGV[3]) end
redis.call('HSET', KEYS[1], ARGV[1], string.format('%.6f', new))
redis.call('EXPIRE', KEYS[1], 30 * 86400)
return 1
"""


def record_photo(
    r: redis.Redis,
    device: str,
    *,
    quality: str,
    upscale: int,
    seconds_per_output_mp: float | None,
    face_seconds: float | None,
    faces: int,
    prescale: bool = False,
) -> None:
    """One finished photo: seconds per output megapixel without its faces, seconds per
    face restored, and how many faces it had."""
    key = redis_keys.photo_rates(device)
    samples = {"faces_per_photo": float(faces)}
    if seconds_per_output_mp is not None:
        samples[rate_key(quality, upscale, prescale)] = seconds_per_output_mp
    if face_seconds is not None:
        samples["face"] = face_seconds
    try:
        ewma = r.register_script(_EWMA)
        p = r.pipeline(transaction=False)
        for field, value in samples.items():
            ewma(keys=[key], args=[field, value, PHOTO_RATE_WEIGHT], client=p)
        p.execute()
    except redis.RedisError:
        pass  # a statistic, never a reason to fail the photo that just finished


DEVICE_KINDS = ("cpu", "cuda")


def photo_rates(r: redis.Redis) -> dict[str, float]:
    """The slowest measured rate of each kind over the device kinds that reported: a
    job may land on any of them. One round trip (read on every photo upload)."""
    p = r.pipeline(transaction=False)
    for kind in DEVICE_KINDS:
        p.hgetall(redis_keys.photo_rates(kind))
    out: dict[str, float] = {}
    for fields in p.execute():
        for field, value in fields.items():
            v = float(value)
            out[field] = max(out.get(field, v), v)
    return out
