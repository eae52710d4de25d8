"""The life of one job inside a worker, shared by every service's tasks.

``run_job`` is what makes a Celery task safe to redeliver: it counts the delivery (a
worker killed mid-task shows up here as one more delivery), refuses to run a job that
already ended, fails it as ``worker_lost`` once the cap is reached, and finishes it
through the job store's guarded transition so the outcome is written exactly once.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from services.contracts import redis_keys
from services.contracts.records import AnyJob
from services.platform.logs import job_id_var, request_id_var
from services.platform.metrics import (
    JOB_OUTCOMES,
    QUEUE_WAIT_SECONDS,
    REDELIVERIES,
    STORAGE_FULL,
    TASK_SECONDS,
    observe_cuda_memory,
)
from services.runtime.registry import ModelUnavailable
from services.store import task_stats
from services.store.blobs import StorageFull
from services.store.connection import decoded
from services.store.jobs import ACTIVE, JobStore
from services.store.workers import worker_id

log = logging.getLogger("kadr.jobs")


class JobFailure(Exception):
    """An expected failure with a code the client can act on."""

    def __init__(self, code: str, message: str, details: Any = None):
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


class JobCanceled(Exception):
    """The job was canceled or deleted while it ran: stop, write nothing more."""


class JobProgress:
    """The ``progress`` callable work receives: records the fraction done (published to
    the job's channel, at most every ``interval`` seconds or each ``step`` of change) and
    looks at the job's state at most every ``check_every`` seconds, raising
    :class:`JobCanceled` once it is no longer running. Work calls it after every unit
    (a tile, a face, a batch of frames), so a cancel stops it within one unit."""

    def __init__(
        self,
        store: JobStore,
        job_id: str,
        *,
        batch_id: str = "",
        interval: float = 1.0,
        step: float = 0.02,
        check_every: float = 0.25,
    ):
        self.store, self.job_id, self.batch_id = store, job_id, batch_id
        self.interval, self.step, self.check_every = interval, step, check_every
        self.written, self.written_at = 0.0, 0.0
        self.checked_at = time.monotonic()

    def __call__(self, fraction: float) -> None:
        now = time.monotonic()
        if now - self.checked_at >= self.check_every:
            self.check(now)
        if fraction - self.written >= self.step or (fraction > self.written and now - self.written_at >= self.interval):
            self.store.set_progress(self.job_id, fraction, batch_id=self.batch_id)
            self.written, self.written_at = fraction, now

    def check(self, now: float | None = None) -> None:
        self.checked_at = time.monotonic() if now is None else now
        if self.store.r.hget(self.store.job_key(self.job_id), "state") not in ACTIVE:
            raise JobCanceled(self.job_id)


# A kind's work: its typed record (records.EnhanceJob, ...) in, its result out.
Work = Callable[[AnyJob, JobProgress], Mapping[str, Any]]


def run_job(
    store: JobStore,
    job_id: str,
    *,
    service: str,
    task: str,
    max_deliveries: int,
    request_id: str,
    work: Work,
    feed: Callable[[str], object] | None = None,
    discard: Callable[[Mapping[str, Any]], object] | None = None,
    partial: Callable[[AnyJob], None] | None = None,
) -> str:
    """Run ``work(job, progress) -> result`` for a job; returns the final state.
    Every delivery, even a skipped one, is timed under ``task``. ``feed(batch_id)`` runs
    after a batch item ends, so the batch's next item is handed over at once.
    ``discard(result)`` removes the files of a result its job no longer takes (canceled
    or deleted between the last unit of work and the end). ``partial(job)`` removes what
    a failed job had written so far (a video's first frames), so a failure, a full disk
    above all, leaves no half result behind."""
    t0 = time.perf_counter()
    try:
        state = _run_job(
            store,
            job_id,
            service=service,
            task=task,
            max_deliveries=max_deliveries,
            request_id=request_id,
            work=work,
            discard=discard,
            partial=partial,
        )
        if feed is not None and state in ("succeeded", "failed", "discarded", "canceled"):
            batch_id = decoded(store.r.hget(store.job_key(job_id), "batch_id"))
            if batch_id:
                try:
                    feed(batch_id)
                except Exception:  # the reaper feeds it within a round; the job itself is done
                    log.exception("feeding the batch failed", extra={"batch": batch_id})
        return state
    finally:
        seconds = time.perf_counter() - t0
        TASK_SECONDS.labels(task=task).observe(seconds)
        task_stats.record(store.r, service, seconds)
        observe_cuda_memory(service)


def _run_job(
    store: JobStore,
    job_id: str,
    *,
    service: str,
    task: str,
    max_deliveries: int,
    request_id: str,
    work: Work,
    discard: Callable[[Mapping[str, Any]], object] | None,
    partial: Callable[[AnyJob], None] | None,
) -> str:
    job_id_var.set(job_id)
    request_id_var.set(request_id)
    verdict, n, job = store.begin(job_id, max_deliveries=max_deliveries, worker=worker_id())
    if verdict == "busy" and _holder_died_here(store, job_id):
        verdict, n, job = store.begin(job_id, max_deliveries=max_deliveries, worker=worker_id())
    if verdict == "busy":
        log.info("job is running in a live worker; duplicate delivery dropped")
        return "busy"
    if verdict == "gone":
        log.info("job deleted before it ran")
        return "gone"
    if verdict == "paused":
        log.info("batch paused; item back to pending")
        return "paused"
    if verdict == "skip":
        log.info("job already finished; redelivered task ignored")
        return "skipped"
    if n > 1:
        REDELIVERIES.labels(service=service).inc()
        log.warning("job redelivered after a worker loss", extra={"deliveries": n})
    if verdict == "exhausted":
        store.transition(
            job_id,
            "failed",
            allowed_from=ACTIVE,
            error={
                "code": "worker_lost",
                "message": f"the worker died {n - 1} times while running this job; giving up",
            },
        )
        JOB_OUTCOMES.labels(service=service, outcome="worker_lost").inc()
        log.error("job failed: worker_lost", extra={"deliveries": n})
        return "failed"

    assert job is not None  # the one verdict left, "run", comes with the job (JobStore.begin)
    started = job["started_at"]
    if n == 1 and started and job["created_at"]:
        # Only first starts: a redelivered job's wait would include the run that died.
        QUEUE_WAIT_SECONDS.labels(task=task).observe(max(0.0, started - job["created_at"]))
    t0 = time.perf_counter()
    try:
        result = work(job, JobProgress(store, job_id, batch_id=job["batch_id"]))
    except JobCanceled:
        JOB_OUTCOMES.labels(service=service, outcome="canceled").inc()
        log.info("job canceled while running: stopped", extra={"seconds": round(time.perf_counter() - t0, 3)})
        return "canceled"
    except BaseException as e:
        if partial is not None:
            try:
                partial(job)
            except Exception:
                log.exception("removing the failed job's partial output failed")
        if isinstance(e, StorageFull):
            STORAGE_FULL.labels(store="blobs").inc()
            return _fail(
                store,
                job_id,
                service,
                "storage_full",
                "the file store ran out of space while writing this job's output; nothing of it was "
                "kept. Retry once space is freed",
            )
        if isinstance(e, JobFailure):
            return _fail(store, job_id, service, e.code, e.message, e.details)
        if isinstance(e, ModelUnavailable):
            return _fail(store, job_id, service, e.state, str(e))
        if isinstance(e, SoftTimeLimitExceeded):
            return _fail(store, job_id, service, "time_limit", "the job ran past its time limit")
        if not isinstance(e, Exception):
            raise  # the process is going away (SystemExit, a hard kill's signal): the task is redelivered
        log.exception("job crashed")  # the job must end; the traceback goes to the log
        return _fail(store, job_id, service, "internal_error", f"{type(e).__name__}: {e}")
    result = {**result, "timings": {**result.get("timings", {}), "total_seconds": round(time.perf_counter() - t0, 4)}}
    moved = store.transition(job_id, "succeeded", allowed_from=ACTIVE, result=result).moved
    outcome = "succeeded" if moved else "discarded"
    if not moved and discard is not None:
        discard(result)  # canceled or deleted in the last moment: its output must not stay
    JOB_OUTCOMES.labels(service=service, outcome=outcome).inc()
    log.info("job %s", outcome, extra={"seconds": result["timings"]["total_seconds"]})
    return "succeeded" if moved else "discarded"


def _holder_died_here(store: JobStore, job_id: str) -> bool:
    """A pool process killed on this host leaves its heartbeat key for a few beats; the
    message Celery requeued at once must not wait for that key to expire."""
    job = store.get(job_id)
    holder = job["worker"] if job else ""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
        return False
    except ProcessLookupError:
        store.r.delete(redis_keys.worker(holder))
        return True
    except PermissionError:
        return False


def _fail(store: JobStore, job_id: str, service: str, code: str, message: str, details: Any = None) -> str:
    err = {"code": code, "message": message}
    if details is not None:
        err["details"] = details
    store.transition(job_id, "failed", allowed_from=ACTIVE, error=err)
    JOB_OUTCOMES.labels(service=service, outcome=code).inc()
    log.warning("job failed: %s", code, extra={"error": message})
    return "failed"
