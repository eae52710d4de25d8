"""Retention of everything kadr stores: a TTL per kind and one disk budget for the store.

Every stored thing has one folder in the blob store (services/store/purge.py): a photo
``jobs/<id>``, a batch ``batches/<id>``, a video with its result sets ``videos/<id>``, a
camera event ``camera/<id>``. Each round (``Retention.sweep``, run by the janitor,
services/ops/janitor.py) surveys those folders through the ``BlobStore`` interface
(listing and usage by prefix, never the local directory itself, so an S3-compatible
store gets the same policy) and reads each one's record:

1. a thing whose TTL has passed since its work ended is removed; a folder whose record
   is gone (expired in Redis, or a crash between upload and record) is removed once its
   newest file is older than ``retention_orphan_grace_seconds``;
2. while everything together exceeds ``storage_budget_bytes``, the finished thing that
   finished first is removed, whatever its kind, then the next.

Nothing with work pending, queued or running is touched, whatever the budget: a batch
still open, a video whose result set is computing, an event being processed. The budget
is then reported as exceeded, not enforced on live work. Removal goes through
``purge`` (record, index entries and files together), is logged with the kind, id, size
and reason, and counted by the janitor.

Finished things do not change, so their usage is remembered between rounds (by when
they finished) instead of being listed again: a round lists only live and new folders.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from services.contracts import redis_keys
from services.contracts.blob_keys import FOLDERS, folder
from services.contracts.records import AnyJob
from services.store.batches import BatchStore
from services.store.blobs import BlobStore, PrefixUsage
from services.store.connection import decoded
from services.store.jobs import TERMINAL, JobStore
from services.store.purge import purge_batch, purge_job

log = logging.getLogger("kadr.retention")

KINDS = tuple(FOLDERS)  # photos, batches, videos, events
REASONS = ("ttl", "record_gone", "disk_budget")
READ_CHUNK = 500  # records read per Redis round trip
_KIND_OF_JOB = {"photos": ("enhance",), "videos": ("segment",), "events": ("camera_event",)}


@dataclass(frozen=True)
class Item:
    kind: str
    id: str
    bytes: int
    files: int
    owner: str | None
    active: bool  # pending, queued or running work (or an open batch)
    finished_at: float | None  # when its work ended (None: not ended, or no record)
    expires_at: float | None  # ended + TTL; None when the record is gone
    newest: float = 0.0  # newest file's modification time


@dataclass
class Round:
    removed: list[tuple[Item, str]] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    over_budget: bool = False
    seconds: float = 0.0

    def totals(self) -> dict[str, dict[str, int]]:
        gone = {(i.kind, i.id) for i, _ in self.removed}
        out = {k: {"bytes": 0, "files": 0, "count": 0} for k in KINDS}
        for i in self.items:
            if (i.kind, i.id) not in gone:
                t = out[i.kind]
                t["bytes"] += i.bytes
                t["files"] += i.files
                t["count"] += 1
        return out


def plan(items: list[Item], *, budget: int, now: float, orphan_grace: float) -> list[tuple[Item, str]]:
    """(item, reason) to remove, in order. Pure."""
    out: list[tuple[Item, str]] = []
    kept: list[Item] = []
    for i in items:
        if i.active:
            kept.append(i)
        elif i.expires_at is None:
            if now - i.newest >= orphan_grace:
                out.append((i, "record_gone"))
            else:
                kept.append(i)  # just uploaded, its record on its way: not ours to judge yet
        elif i.expires_at <= now:
            out.append((i, "ttl"))
        else:
            kept.append(i)
    total = sum(i.bytes for i in kept)
    if budget and total > budget:
        for i in sorted(
            (i for i in kept if not i.active and i.finished_at is not None),
            key=lambda i: (i.finished_at, i.expires_at or 0, i.kind, i.id),
        ):
            if total <= budget:
                break
            out.append((i, "disk_budget"))
            total -= i.bytes
    return out


class Retention:
    def __init__(self, jobs: JobStore, blobs: BlobStore, settings: Any):
        self.jobs, self.blobs, self.s = jobs, blobs, settings
        self.batches = BatchStore(jobs)
        self._known: dict[tuple[str, str], tuple[float, PrefixUsage]] = {}

    def ttl(self, kind: str) -> int:
        return int(
            {
                "photos": self.s.retention_photos_seconds,
                "videos": self.s.retention_videos_seconds,
                "events": self.s.retention_events_seconds,
            }[kind]
        )

    # survey
    def _usage(self, kind: str, ident: str, finished_at: float | None) -> PrefixUsage:
        key = (kind, ident)
        if finished_at is not None and key in self._known and self._known[key][0] == finished_at:
            return self._known[key][1]
        u = self.blobs.usage(folder(kind, ident))
        if finished_at is not None:
            self._known[key] = (finished_at, u)
        else:
            self._known.pop(key, None)
        return u

    def _job_item(self, kind: str, ident: str, job: AnyJob | None) -> Item:
        if job is None or job.get("kind") not in _KIND_OF_JOB[kind] or (kind == "photos" and job.get("batch_id")):
            u = self._usage(kind, ident, None)
            return Item(kind, ident, u.bytes, u.files, None, False, None, None, u.newest)
        family = [job] + (self.jobs.children(ident) if kind == "videos" else [])
        active = any(j["state"] not in TERMINAL for j in family)
        finished = (
            None if active else max((j.get("finished_at") or j.get("updated_at") or j["created_at"]) for j in family)
        )
        u = self._usage(kind, ident, finished)
        expires = (finished if finished is not None else time.time()) + self.ttl(kind)
        return Item(kind, ident, u.bytes, u.files, job.get("owner"), active, finished, expires, u.newest)

    def _batch_item(self, ident: str) -> Item:
        b = self.batches.get(ident, rate=False)
        if b is None:
            u = self._usage("batches", ident, None)
            return Item("batches", ident, u.bytes, u.files, None, False, None, None, u.newest)
        c = b["counts"]
        active = b["open"] or bool(c["pending"] + c["queued"] + c["running"])
        finished = None
        if not active:
            # The TTL counts from the end of the work: a batch that ran longer than its
            # TTL is still there to be downloaded once it ends.
            finished = max(t for t in (self.batches.last_end(ident), b["closed_at"], b["created_at"]) if t is not None)
        u = self._usage("batches", ident, finished)
        expires = (finished if finished is not None else time.time()) + int(b["ttl_seconds"] or self.jobs.ttl)
        return Item("batches", ident, u.bytes, u.files, b.get("owner"), active, finished, expires, u.newest)

    def survey(self, now: float) -> list[Item]:
        items: list[Item] = []
        seen: set[tuple[str, str]] = set()
        for kind in KINDS:
            ids = self.blobs.folders(FOLDERS[kind])
            if kind == "events":
                # An event may have no files at all (no images sent, none produced): its
                # record still expires with the others.
                old = decoded(self.jobs.r.zrangebyscore(redis_keys.CAMERA_EVENTS, "-inf", now - self.ttl("events")))
                ids = sorted(set(ids) | set(old))
            for start in range(0, len(ids), READ_CHUNK):
                chunk = ids[start : start + READ_CHUNK]
                if kind == "batches":
                    items += [self._batch_item(ident) for ident in chunk]
                else:  # one round trip for a chunk of records
                    items += [self._job_item(kind, ident, job) for ident, job in zip(chunk, self.jobs.get_many(chunk))]
                seen.update((kind, ident) for ident in chunk)
        for key in [k for k in self._known if k not in seen]:
            del self._known[key]  # removed by someone else (a DELETE)
        return items

    # act
    def remove(self, item: Item, reason: str) -> None:
        if item.kind == "batches":
            purge_batch(self.batches, self.blobs, item.id)
        else:
            job = self.jobs.get(item.id)
            if job is not None and job.get("kind") in _KIND_OF_JOB[item.kind]:
                purge_job(self.jobs, self.blobs, job)
            else:
                self.blobs.delete_prefix(folder(item.kind, item.id))
                if item.kind == "events":
                    self.jobs.r.zrem(redis_keys.CAMERA_EVENTS, item.id)
        self._known.pop((item.kind, item.id), None)
        log.info(
            "removed by retention",
            extra={"kind": item.kind, "id": item.id, "reason": reason, "bytes": item.bytes, "files": item.files},
        )

    def sweep(self, now: float | None = None) -> Round:
        t0 = time.perf_counter()
        now = time.time() if now is None else now
        rnd = Round(items=self.survey(now))
        for item, reason in plan(
            rnd.items, budget=self.s.storage_budget_bytes, now=now, orphan_grace=self.s.retention_orphan_grace_seconds
        ):
            self.remove(item, reason)
            rnd.removed.append((item, reason))
        total = sum(t["bytes"] for t in rnd.totals().values())
        if self.s.storage_budget_bytes and total > self.s.storage_budget_bytes:
            rnd.over_budget = True
            log.warning(
                "storage over budget with only live work left",
                extra={"bytes": total, "budget": self.s.storage_budget_bytes},
            )
        rnd.seconds = time.perf_counter() - t0
        return rnd


def usage_by_owner(rnd: Round) -> dict[str, dict[str, dict[str, Any]]]:
    """Per owner and kind: bytes, files, count and the soonest expiry of what remains."""
    gone = {(i.kind, i.id) for i, _ in rnd.removed}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for i in rnd.items:
        if i.owner is None or (i.kind, i.id) in gone:
            continue
        t = out.setdefault(i.owner, {}).setdefault(
            i.kind, {"bytes": 0, "files": 0, "count": 0, "next_expiry": None, "live": 0}
        )
        t["bytes"] += i.bytes
        t["files"] += i.files
        t["count"] += 1
        t["live"] += int(i.active)
        if not i.active and i.expires_at is not None:
            t["next_expiry"] = i.expires_at if t["next_expiry"] is None else min(t["next_expiry"], i.expires_at)
    return out
