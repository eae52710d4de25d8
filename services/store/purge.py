"""Removing what a user or retention names: the record, every index entry and every file.

One place for each kind, used by the gateway's DELETEs and by retention alike, so that a
photo, a video (with its result sets), one result set, a camera event or a batch leaves
nothing behind whichever way it goes. Work still queued or running is canceled first: a
worker holding it stops at its next unit of work and finds the job gone.

Where each kind keeps its files (one folder per thing, so one prefix removes it):

- a photo: ``jobs/<id>/``; a batch (inputs and every item's results): ``batches/<id>/``;
- a video: ``videos/<id>/``, its result sets under ``videos/<id>/results/<set id>/``;
- a camera event: ``camera/<id>/``.
"""

from __future__ import annotations

import logging

from services.contracts import blob_keys, redis_keys
from services.contracts.records import AnyJob
from services.platform.metrics import JOBS_CANCELED
from services.store.batches import BatchStore
from services.store.blobs import BlobStore
from services.store.camera_events import EVENT_KIND
from services.store.jobs import ACTIVE, TERMINAL, JobStore, Transition

log = logging.getLogger("kadr.purge")

PHOTO, VIDEO, RESULT_SET = "enhance", "segment", "stabilize"


def blob_prefix(job: AnyJob) -> str:
    kind = job["kind"]
    if kind == VIDEO:
        return blob_keys.video(job["id"])
    if kind == RESULT_SET:
        return blob_keys.result_set(job["params"]["video_id"], job["id"])
    if kind == EVENT_KIND:
        return blob_keys.event(job["id"])
    if job["batch_id"]:
        raise ValueError("a batch item is removed with its batch")
    return blob_keys.photo(job["id"])


def cancel(jobs: JobStore, job: AnyJob) -> Transition:
    """A queued or running job moved to ``canceled`` (and counted); otherwise unchanged."""
    moved = jobs.transition(job["id"], "canceled", allowed_from=ACTIVE)
    if moved.moved:
        JOBS_CANCELED.labels(kind=job["kind"], was=moved.previous).inc()
    return moved


def purge_job(jobs: JobStore, blobs: BlobStore, job: AnyJob) -> int:
    """A job of any kind but a batch item, whole; returns the files removed."""
    prefix = blob_prefix(job)
    family = [job["id"]]
    if job["kind"] == VIDEO:
        for child in jobs.children(job["id"]):
            cancel(jobs, child)
            family.append(child["id"])
    cancel(jobs, job)
    p = jobs.r.pipeline()
    if job["kind"] == RESULT_SET and job.get("parent_id"):
        p.lrem(redis_keys.job_children(job["parent_id"]), 0, job["id"])
    if job["kind"] == EVENT_KIND:
        p.zrem(redis_keys.CAMERA_EVENTS, job["id"])
        p.zrem(redis_keys.camera_events((job.get("params") or {}).get("camera", "")), job["id"])
    # Its callbacks' once-marks (a delivery still due goes out, saying it was deleted).
    p.delete(*[redis_keys.outbox_once(ident, state) for ident in family for state in TERMINAL])
    p.execute()
    jobs.delete(job["id"])  # children's records, owner and live indexes, running set
    return blobs.delete_prefix(prefix)


def purge_batch(batches: BatchStore, blobs: BlobStore, batch_id: str) -> int:
    """A batch with its items' records, inputs and results; returns the files removed."""
    batches.cancel(batch_id)
    removed = blobs.delete_prefix(blob_keys.batch(batch_id))
    batches.delete(batch_id)
    return removed
