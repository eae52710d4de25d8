"""Photos into a batch: single images or ZIP/TAR archives, each entry checked like an
upload of its own. A file that fails is reported and the others go in: with 10,000
photos, one bad file must not send the client back to the start."""

from __future__ import annotations

from typing import Any, BinaryIO

import redis
from werkzeug.datastructures import FileStorage

from gateway import archives, quotas
from gateway.context import Kadr
from gateway.errors import ApiError
from gateway.filenames import sanitize_filename
from gateway.photo_plans import item_plan, plan_photo
from gateway.storage_guard import redis_refused
from gateway.uploads import sha256_and_size, stream_of
from services.contracts import blob_keys
from services.contracts.records import Batch
from services.media import images
from services.platform.metrics import REJECTIONS, UPLOAD_BYTES
from services.store import task_stats
from services.store.batches import BatchClosed


def _photo(
    k: Kadr, batch: Batch, name: str, data: BinaryIO, request_id: str, rates: dict[str, float], part: int
) -> list[dict[str, Any]]:
    """Check, plan (each variant's output must fit) and store one photo (a file at 0: an
    upload spooled by werkzeug, or an archive entry spooled by archives.py), add it to
    the batch; returns an answer per variant."""
    info = images.inspect_image(data, max_bytes=k.settings.max_upload_bytes, max_pixels=k.settings.max_image_pixels)
    plans = {
        v["name"]: item_plan(*plan_photo(k, {**batch["params"], **(v.get("params") or {})}, info, rates))
        for v in batch["variants"]
    }
    sha, size = sha256_and_size(data)
    # Keyed by content: identical photos share one file, and a retried upload rewrites nothing.
    key = blob_keys.batch_input(batch["id"], sha)
    if not k.blobs.exists(key):
        k.blobs.put_stream(key, data)
    UPLOAD_BYTES.inc(size)
    inp = {
        "blob": key,
        "name": name,
        "format": info.format,
        "width": info.width,
        "height": info.height,
        "bytes": size,
        "sha256": sha,
    }
    jobs, existing = k.batches.add_photo(batch, input=inp, request_id=request_id, plans=plans)
    return [
        {
            "id": j["id"],
            "name": name,
            "variant": j.get("variant") or "default",
            "sha256": sha,
            "state": j["state"],
            "duplicate_of": j.get("duplicate_of") or None,
            "existing": existing,
            "file": part,
        }
        for j in jobs
    ]


def _refuse(out: list[dict[str, Any]], part: int, name: str, code: str, message: str) -> None:
    REJECTIONS.labels(reason=code).inc()
    out.append({"name": name, "code": code, "message": message, "file": part})


class _QuotaReached(Exception):
    def __init__(self, error: ApiError):
        self.error = error


def add_files(k: Kadr, batch: Batch, files: list[FileStorage], request_id: str) -> dict[str, Any]:
    """``{"accepted", "rejected", "ignored"}``, and ``"stopped"`` (the quota error) when a
    per-key quota stopped the request: what came before it is in; the rest was not read
    (send it again later: photos already added are recognized and not added twice)."""
    accepted: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    ignored = 0
    quota = quotas.BatchQuota(k, batch)
    n_items = len(batch["variants"]) or 1
    limits = archives.Limits(
        max_entries=k.settings.archive_max_entries,
        max_entry_bytes=k.settings.max_upload_bytes,
        max_total_bytes=k.settings.archive_max_bytes,
        max_ratio=k.settings.archive_max_ratio,
    )

    rates = task_stats.photo_rates(k.redis)

    def one(part: int, name: str, data: BinaryIO) -> None:
        if archives.is_nested_archive(data):
            return _refuse(rejected, part, name, "nested_archive", f"{name}: archives inside archives are not unpacked")
        try:
            quota.take(n_items)
        except ApiError as e:
            raise _QuotaReached(e)
        try:
            answers = _photo(k, batch, name, data, request_id, rates, part)
            accepted.extend(answers)
            if not any(a["existing"] for a in answers):
                quota.took(n_items)
        except redis.exceptions.OutOfMemoryError:  # past maxmemory between two checks
            raise _QuotaReached(redis_refused())
        except images.ImageError as e:
            _refuse(rejected, part, name, e.code, f"{name}: {e.message}")
        except ApiError as e:  # the photo's output would be too large
            _refuse(rejected, part, name, e.code, f"{name}: {e.message}")

    try:
        for part, f in enumerate(files):
            name = sanitize_filename(f.filename or "", default="upload")
            kind = archives.archive_kind(f.stream)
            if kind is None:
                f.stream.seek(0, 2)
                size = f.stream.tell()
                f.stream.seek(0)
                if size > k.settings.max_upload_bytes:
                    _refuse(
                        rejected,
                        part,
                        name,
                        "file_too_large",
                        f"{name}: over the {k.settings.max_upload_bytes} byte limit",
                    )
                    continue
                one(part, name, stream_of(f))  # werkzeug spooled it (to disk past 1 MiB): read from there
                continue
            try:
                for entry in archives.iter_archive(f.stream, kind, limits):
                    if entry is None:
                        ignored += 1
                    elif isinstance(entry, archives.Refused):
                        _refuse(rejected, part, f"{name}/{entry.name}", entry.code, f"{name}: {entry.message}")
                    else:
                        with entry.data:
                            one(part, entry.name, entry.data)
            except archives.ArchiveError as e:
                # What was unpacked before the problem stays in; the rest is reported.
                _refuse(rejected, part, name, e.code, f"{name}: {e.message}")
    except BatchClosed:
        raise ApiError(409, "batch_closed", "this batch no longer accepts photos (closed or canceled)")
    except _QuotaReached as q:
        if not accepted:
            raise q.error
        REJECTIONS.labels(reason=q.error.code).inc()
        return {
            "accepted": accepted,
            "rejected": rejected,
            "ignored": ignored,
            "stopped": {"code": q.error.code, "message": q.error.message},
        }
    return {"accepted": accepted, "rejected": rejected, "ignored": ignored}
