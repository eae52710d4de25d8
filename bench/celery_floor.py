"""The floor under any Celery task here: send → start of a task that does nothing, with
kadr's own Celery settings (services/platform/celery_app.py), a prefork worker and the
same Redis. ``bench.batch_overhead`` measures it in its run, next to the per-item
overhead, so the part of that overhead Celery itself takes is a number, not a guess.

The worker runs this module: ``celery -A bench.celery_floor worker -Q bench-floor``.
"""

from __future__ import annotations

import os
import time

from services.contracts.settings import Settings
from services.platform.celery_app import create_celery

QUEUE = "bench-floor"
STARTS = "bench:floor:starts"

app = create_celery(Settings(redis_url=os.environ.get("KADR_REDIS_URL", "redis://127.0.0.1:6379/0")))
_redis = None


@app.task(name="bench.floor")
def floor(sent_at: float) -> None:
    started = time.time()
    global _redis
    if _redis is None:
        import redis

        _redis = redis.Redis.from_url(app.conf.broker_url)
    _redis.rpush(STARTS, f"{sent_at} {started}")


def measure(redis_url: str, n: int, log_dir) -> list[float]:
    """Seconds from ``send_task`` to the task's first line, for ``n`` tasks sent one at a time."""
    import redis

    from testbed.stack import PY, Proc, wait_for

    r = redis.Redis.from_url(redis_url)
    r.delete(STARTS)
    sender = create_celery(Settings(redis_url=redis_url))
    worker = Proc(
        "celery-floor",
        [
            PY,
            "-m",
            "celery",
            "-A",
            "bench.celery_floor",
            "worker",
            "-Q",
            QUEUE,
            "--pool",
            "prefork",
            "-c",
            "1",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        log_dir=log_dir,
        env={"KADR_REDIS_URL": redis_url},
    )
    try:
        out = []
        for i in range(n + 10):  # the first ones warm the worker up
            sender.send_task("bench.floor", args=[time.time()], queue=QUEUE)
            raw = wait_for(
                lambda i=i: r.lindex(STARTS, i), 120 if i == 0 else 10, "the floor task to start", interval=0.0005
            )
            sent, started = map(float, raw.split())
            if i >= 10:
                out.append(started - sent)
        return out
    finally:
        worker.stop()
