"""What a batch has produced so far, streamed: manifests (CSV, JSON lines) and the ZIP.

Both walk the batch a page at a time and stream as they go, so a 10,000-item export
costs one page of job records in memory and starts at once, while the batch is still
running; each reflects the items ended when its page was read.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from typing import Any

from zipstream import ZIP_STORED, ZipStream

from gateway.filenames import sanitize_filename
from services.contracts.records import AnyJob, Batch, EnhanceResult
from services.media import images
from services.store.batches import BatchStore
from services.store.blobs import BlobNotFound, BlobStore

COLUMNS = [
    "item_id",
    "name",
    "variant",
    "state",
    "input_bytes",
    "input_width",
    "input_height",
    "output_bytes",
    "output_width",
    "output_height",
    "output_format",
    "faces",
    "seconds",
    "cache_hit",
    "duplicate_of",
    "error_code",
    "error_message",
    "output_url",
]


def manifest_row(job: AnyJob) -> dict[str, Any]:
    inp, res = job.get("input") or {}, job.get("result") or {}
    err: Mapping[str, Any] = job.get("error") or {}
    timings = res.get("timings") or {}
    src = job.get("duplicate_of") or job["id"]
    done = job["state"] == "succeeded" or (job["state"] == "skipped" and job.get("duplicate_of"))
    return {
        "item_id": job["id"],
        "name": inp.get("name", ""),
        "variant": job.get("variant") or "default",
        "state": job["state"],
        "input_bytes": inp.get("bytes"),
        "input_width": inp.get("width"),
        "input_height": inp.get("height"),
        "output_bytes": res.get("bytes"),
        "output_width": res.get("width"),
        "output_height": res.get("height"),
        "output_format": res.get("format"),
        "faces": res.get("faces_restored", res.get("faces")),
        "seconds": timings.get("total_seconds"),
        "cache_hit": res.get("cache_hit"),
        "duplicate_of": job.get("duplicate_of") or None,
        "error_code": err.get("code"),
        "error_message": err.get("message"),
        "output_url": f"/api/v1/jobs/{src}/result" if done else None,
    }


# A cell a spreadsheet would run as a formula (a photo named "=HYPERLINK(...)" or
# "+cmd|..."): prefixed with a quote, as OWASP advises, so it stays text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, str) and v.startswith(_FORMULA_START):
        return "'" + v
    return v


def manifest_csv(batches: BatchStore, batch_id: str) -> Iterator[str]:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    w.writeheader()
    for n, job in enumerate(batches.iter_items(batch_id), 1):
        w.writerow({k: csv_cell(v) for k, v in manifest_row(job).items()})
        if n % 200 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def manifest_jsonl(batches: BatchStore, batch_id: str) -> Iterator[str]:
    for job in batches.iter_items(batch_id):
        yield json.dumps(manifest_row(job), separators=(",", ":")) + "\n"


def _archive_entries(batches: BatchStore, batch: Batch) -> Iterator[tuple[str, str]]:
    """(blob key, entry name) per finished output: in a folder per variant when the
    batch has several; a duplicate gets the output of the item that processed it."""
    by_variant = len(batch["variants"]) > 1
    results: dict[str, EnhanceResult] = {}
    taken: set[str] = set()
    for job in batches.iter_items(batch["id"]):
        if job["state"] == "succeeded" and (res := job.get("result")):
            results[job["id"]] = res
        elif job["state"] == "skipped" and job.get("duplicate_of"):
            res = results.get(job["duplicate_of"])  # the original comes first in upload order
            if res is None:
                continue
        else:
            continue
        stem = (job.get("input") or {}).get("name", "image").rsplit(".", 1)[0]
        name = f"{stem}.{images.FORMAT_EXTENSION[res['format']]}"
        if by_variant:
            name = f"{sanitize_filename(job.get('variant') or 'default')}/{name}"
        base, n = name, 1
        while name.lower() in taken:  # two photos called IMG_1.jpg in different folders
            n += 1
            stem_, _, ext = base.rpartition(".")
            name = f"{stem_} ({n}).{ext}"
        taken.add(name.lower())
        yield res["blob"], name


def archive(blobs: BlobStore, batches: BatchStore, batch: Batch) -> Iterator[bytes]:
    # Images are already compressed: stored entries, nothing held in memory.
    zs = ZipStream(compress_type=ZIP_STORED)
    for key, name in _archive_entries(batches, batch):
        try:
            size = blobs.size(key)
        except BlobNotFound:
            continue
        zs.add(blobs.iter_chunks(key), name, size=size)
    yield from zs
