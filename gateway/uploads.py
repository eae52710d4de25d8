"""Turning an uploaded file into a stored blob plus the job's ``input`` record.

Checks run on the spooled upload before anything is kept: size, magic bytes and the
pixel count from the header (a decompression bomb is refused without decoding).
The original file name is kept only as sanitised metadata; the blob key is ours.
"""

from __future__ import annotations

import hashlib
from typing import IO, Any, BinaryIO, cast

from werkzeug.datastructures import FileStorage

from gateway.errors import ApiError
from gateway.filenames import sanitize_filename
from services.media import images
from services.platform.metrics import UPLOAD_BYTES
from services.store.blobs import BlobStore

CHUNK = 1024 * 1024


def stream_of(upload: FileStorage) -> BinaryIO:
    return cast(BinaryIO, upload.stream)  # werkzeug types it IO[bytes]; it is a binary file


def sha256_and_size(stream: IO[bytes]) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    stream.seek(0)
    while chunk := stream.read(CHUNK):
        h.update(chunk)
        n += len(chunk)
    stream.seek(0)
    return h.hexdigest(), n


def check_image(upload: FileStorage, *, max_bytes: int, max_pixels: int) -> images.ImageInfo:
    try:
        return images.inspect_image(stream_of(upload), max_bytes=max_bytes, max_pixels=max_pixels)
    except images.ImageError as e:
        name = sanitize_filename(upload.filename or "")
        raise ApiError(e.status, e.code, f"{name}: {e.message}", details={"file": name})


def store_image(upload: FileStorage, info: images.ImageInfo, blobs: BlobStore, key: str) -> dict[str, Any]:
    sha, size = sha256_and_size(upload.stream)
    blobs.put_stream(key, stream_of(upload))
    UPLOAD_BYTES.inc(size)
    return {
        "blob": key,
        "name": sanitize_filename(upload.filename or "", default="image"),
        "format": info.format,
        "width": info.width,
        "height": info.height,
        "bytes": size,
        "sha256": sha,
    }
