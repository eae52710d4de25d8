"""Finding 3: batch files and archive entries up to 50 MiB each were read into memory,
per request, in the gateway. An entry is now copied out in pieces into a spooled file
(disk past 1 MiB) and an uploaded file is read from werkzeug's spool in pieces: the
gateway's Python heap grows by about a megabyte per photo, not by the photo."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

import numpy as np
from PIL import Image

from gateway import archives

MIB = 2**20


def _big_bmp() -> bytes:
    arr = np.random.default_rng(0).integers(0, 255, (2600, 2600, 3), dtype=np.uint8)  # 20 MB
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "BMP")
    return buf.getvalue()


def test_an_archive_entry_is_spooled_not_held():
    photo = _big_bmp()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("scan.bmp", photo)
    data, size = buf.getvalue(), len(photo)
    del photo, buf
    limits = archives.Limits(max_entries=10, max_entry_bytes=50 * MIB, max_total_bytes=MIB * 1024, max_ratio=100)
    tracemalloc.start()
    (entry,) = archives.iter_archive(io.BytesIO(data), "zip", limits)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert entry.size == size
    assert peak < 3 * MIB, f"{peak / MIB:.1f} MiB traced for a {entry.size / MIB:.0f} MiB entry"
    entry.data.close()


def test_a_big_photo_uploaded_into_a_batch_is_not_read_into_memory(gateway):
    client, auth, _ = gateway()
    photo = _big_bmp()
    bid = client.post("/api/v1/batches", headers=auth, json={"params": {"upscale": 1}}).json["id"]
    tracemalloc.start()
    r = client.post(f"/api/v1/batches/{bid}/items", headers=auth, data={"files": [(io.BytesIO(photo), "scan.bmp")]})
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert r.status_code == 202 and len(r.json["accepted"]) == 1, r.json
    # The test client copies the body it sends into its own buffer (that is the client's
    # 20 MB); the gateway's side of the request adds little on top.
    assert peak < len(photo) + 8 * MIB, f"{peak / MIB:.1f} MiB traced for a {len(photo) / MIB:.0f} MiB photo"
