"""Stored files sent whole or by byte range (a <video> element seeks with Range requests)."""

from __future__ import annotations

from flask import Response, send_file

from gateway.context import kadr
from gateway.errors import ApiError
from services.store.blobs import BlobNotFound


def send_blob(
    key: str, mimetype: str, *, etag: str, download_name: str, gone: str = "the file was removed"
) -> Response:
    """The file itself where the store has local files (the server answers Range from
    it), a stream otherwise; 410 ``gone`` when it was removed after its record said so."""
    blobs = kadr().blobs
    try:
        source = blobs.local_path(key) or blobs.open(key)
    except BlobNotFound:
        raise ApiError(410, "gone", gone)
    return send_file(source, mimetype=mimetype, conditional=True, etag=etag, max_age=3600, download_name=download_name)
