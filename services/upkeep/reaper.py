"""Orphaned jobs: running in a worker that died with them.

A pool process that dies is handled by Celery (acks_late + reject_on_worker_lost puts the
message back at once). A whole worker that dies (kill -9, OOM killer, host loss) leaves
its message unacknowledged in Redis until the visibility timeout, an hour by default.
Jobs record which worker process runs them and every worker process keeps a heartbeat
key, so a running job whose worker's key has expired is an orphan: it is put back to
``queued`` and its task (recorded at dispatch) sent again. When the old message is
eventually restored, ``JobStore.begin`` sees the job finished (or running in a live
worker) and drops it, so the work still happens once. Deliveries are counted by
``begin`` as always, so the redelivery cap applies to orphans too.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

from services.contracts import redis_keys
from services.platform.dispatch import DispatchError, Send
from services.store.jobs import JobStore
from services.upkeep.stranded import restore_stranded

log = logging.getLogger("kadr.reaper")


def reap_orphans(
    store: JobStore, *, grace_seconds: float, send: Send, now: float | None = None
) -> list[tuple[str, str]]:
    """One pass; returns (job id, "requeued" | "failed") for each orphan handled."""
    now = time.time() if now is None else now
    done = []
    for job_id in store.running_ids():
        job = store.get(job_id)
        if job is None or job["state"] != "running":
            store.r.zrem(redis_keys.RUNNING, job_id)
            continue
        worker = job.get("worker") or ""
        if worker and store.r.exists(redis_keys.worker(worker)):
            continue
        if now - (job.get("updated_at") or 0) < grace_seconds:
            continue  # its worker may just be starting to beat
        if job.get("task"):
            if store.transition(job_id, "queued", allowed_from=("running",), worker="").moved:
                try:
                    send(job["task"], json.loads(job["task_payload"]))
                except DispatchError as e:
                    # Not on any queue: queued, it would wait for nothing. Back to running in
                    # its dead worker, so a round past the grace period tries again.
                    store.transition(job_id, "running", allowed_from=("queued",), worker=worker)
                    log.error(
                        "orphaned job not requeued: the broker did not take it; trying again later",
                        extra={"job_id": job_id, "error": str(e)},
                    )
                    continue
                done.append((job_id, "requeued"))
                log.warning(
                    "orphaned job requeued: its worker is gone", extra={"job_id": job_id, "dead_worker": worker}
                )
        elif store.transition(
            job_id,
            "failed",
            allowed_from=("running",),
            error={"code": "worker_lost", "message": "the worker running this job died"},
        ).moved:
            done.append((job_id, "failed"))
            log.error("orphaned job failed: nothing to resend", extra={"job_id": job_id})
    return done


class Reaper(threading.Thread):
    """Runs ``reap_orphans`` and ``restore_stranded`` every ``interval`` seconds in
    whichever worker process holds the cluster-wide lock for that round, so several
    workers never reap twice."""

    def __init__(
        self,
        store: JobStore,
        *,
        interval: float,
        grace_seconds: float,
        send: Send,
        stranded_seconds: float,
        also: Callable[[], object] | None = None,
    ):
        super().__init__(name="kadr-reaper", daemon=True)
        self.store, self.interval, self.grace, self.send = store, interval, grace_seconds, send
        self.stranded_seconds = stranded_seconds
        self.also = also  # more cluster-wide upkeep under the same lock (batch feeding)
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                if self.store.r.set(redis_keys.REAPER_LOCK, "1", nx=True, px=int(self.interval * 1000)):
                    reap_orphans(self.store, grace_seconds=self.grace, send=self.send)
                    restore_stranded(self.store, older_than=self.stranded_seconds)
                    if self.also is not None:
                        self.also()
            except Exception:  # Redis away: try again next round
                log.exception("reaper round failed")

    def stop(self) -> None:
        self._stop_event.set()
