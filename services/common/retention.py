"""Retention of batch files: a TTL per batch and a disk budget for all of them.

Every file of a batch lives under ``batches/<id>/`` in the blob store (inputs by
content hash, results per item). Each round (``sweep``, run by the workers' reaper at
most every ``retention_interval_seconds``, under its lock):

1. a batch whose TTL has passed since it ended (its last item, its close or cancel) is
   removed when it is not running; a folder whose batch record is gone from Redis
   (expired with its TTL) is removed too;
2. while the folders together exceed ``storage_budget_bytes``, the finished batch that
   finished first is removed, then the next.

A batch with work pending, queued or running is never touched, whatever the budget:
the budget is then reported as exceeded in the log, not enforced on live work. Hidden
files and folders (``.keep``, editors' and NFS's dot files) are neither counted nor
deleted. Every removal is logged with the batch id, its size and the reason.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .batches import BatchStore

log = logging.getLogger("kadr.retention")


@dataclass(frozen=True)
class Usage:
    batch_id: str
    bytes: int
    active: bool  # has pending, queued or running items, or is still open
    finished_at: float | None  # when its last item ended (None: not finished / unknown)
    expires_at: float | None  # ended + TTL; None when the record is gone (orphan folder)


def plan(usages: list[Usage], *, budget: int, now: float) -> list[tuple[str, str]]:
    """(batch id, reason) to remove, in order. Pure."""
    out: list[tuple[str, str]] = []
    kept = []
    for u in usages:
        if u.active:
            kept.append(u)
        elif u.expires_at is None:
            out.append((u.batch_id, "record_gone"))
        elif u.expires_at <= now:
            out.append((u.batch_id, "ttl"))
        else:
            kept.append(u)
    total = sum(u.bytes for u in kept)
    if budget and total > budget:
        for u in sorted((u for u in kept if not u.active),
                        key=lambda u: (u.finished_at or 0, u.expires_at or 0, u.batch_id)):
            if total <= budget:
                break
            out.append((u.batch_id, "disk_budget"))
            total -= u.bytes
    return out


def folder_bytes(path: Path) -> int:
    total = 0
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for f in files:
            if not f.startswith("."):
                try:
                    total += os.lstat(os.path.join(root, f)).st_size
                except FileNotFoundError:
                    pass
    return total


def usages(batches: BatchStore, root: Path) -> list[Usage]:
    out = []
    base = root / "batches"
    if not base.is_dir():
        return out
    for entry in os.scandir(base):
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        b = batches.get(entry.name)
        size = folder_bytes(Path(entry.path))
        if b is None:
            out.append(Usage(entry.name, size, False, None, None))
            continue
        c = b["counts"]
        active = b["open"] or bool(c["pending"] + c["queued"] + c["running"])
        finished = batches.last_end(entry.name) if not active else None
        # The TTL counts from the end of the work: a batch that ran longer than its TTL
        # is still there to be downloaded once it ends.
        ended = max(t for t in (finished, b["closed_at"], b["created_at"]) if t is not None)
        out.append(Usage(entry.name, size, active, finished, ended + (b["ttl_seconds"] or 0)))
    return out


def sweep(batches: BatchStore, root: Path, *, budget: int, now: float | None = None) -> list[tuple[str, str, int]]:
    now = time.time() if now is None else now
    found = usages(batches, root)
    sizes = {u.batch_id: u.bytes for u in found}
    removed = []
    for bid, reason in plan(found, budget=budget, now=now):
        shutil.rmtree(root / "batches" / bid, ignore_errors=True)
        batches.delete(bid)
        removed.append((bid, reason, sizes[bid]))
        log.info("batch removed", extra={"batch": bid, "reason": reason, "bytes": sizes[bid]})
    total = sum(u.bytes for u in found) - sum(r[2] for r in removed)
    if budget and total > budget:
        log.warning("storage over budget with only running batches left",
                    extra={"bytes": total, "budget": budget})
    return removed
