"""Finding 4: an image cut short (or with a damaged critical chunk) was accepted with 202
and failed minutes later in the worker. Found at upload from the file's structure, no
pixel decoded: 400 invalid_image at once. Whole files with the usual oddities (an EXIF
thumbnail's own end marker, bytes after the end, a damaged metadata chunk) still pass."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from services.media.images import ImageError, inspect_image

LIMITS = {"max_bytes": 50 * 2**20, "max_pixels": 40_000_000}


def _photo(fmt: str, **kw) -> bytes:
    arr = np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **kw)
    return buf.getvalue()


def _code(data: bytes) -> str | None:
    try:
        inspect_image(data, **LIMITS)
    except ImageError as e:
        return e.code
    return None


def _png_chunk(ctype: bytes, data: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(ctype + data) if crc is None else crc
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", crc)


def _with_chunk_before_iend(png: bytes, chunk: bytes) -> bytes:
    at = png.rindex(b"IEND") - 4
    return png[:at] + chunk + png[at:]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP"])
@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_an_upload_cut_short_is_refused_at_once(fmt, keep):
    whole = _photo(fmt)
    assert _code(whole) is None
    assert _code(whole[: int(len(whole) * keep)]) == "invalid_image"


def test_a_jpeg_cut_after_its_exif_thumbnail_is_refused():
    """The thumbnail inside EXIF has its own end marker: only one after the scan counts."""
    thumb = _photo("JPEG")[:]
    exif = Image.Exif()
    exif[0x0112] = 1
    data = _photo("JPEG", exif=exif.tobytes())
    # A JPEG whose APP1 holds a whole JPEG (thumbnail-like), cut inside the main scan.
    app1 = b"Exif\x00\x00" + thumb[:2000] + b"\xff\xd9"
    forged = data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:]
    assert _code(forged) is None
    assert _code(forged[: len(forged) - 500]) == "invalid_image"


def test_a_png_whose_image_data_is_damaged_is_refused():
    png = _photo("PNG")
    at = png.index(b"IDAT") + 100
    damaged = png[:at] + bytes([png[at] ^ 0xFF]) + png[at + 1 :]
    assert _code(damaged) == "invalid_image"


def test_whole_files_with_the_usual_oddities_still_pass():
    jpeg = _photo("JPEG")
    assert _code(jpeg + b"\x00" * 4096) is None  # trailer after the end (some cameras)
    png = _photo("PNG")
    bad_text = _png_chunk(b"tEXt", b"Comment\x00hello", crc=0)  # metadata a decoder drops
    assert _code(_with_chunk_before_iend(png, bad_text)) is None
    mpo = jpeg + _photo("JPEG")  # a phone's multi-picture file: two JPEGs back to back
    assert _code(mpo) is None


def test_the_gateway_answers_400_invalid_image_instead_of_202(gateway):
    client, auth, _ = gateway()
    cut = _photo("JPEG")[:-3000]
    r = client.post("/api/v1/enhance", headers=auth, data={"file": (io.BytesIO(cut), "cut.jpg")})
    assert r.status_code == 400 and r.json["error"]["code"] == "invalid_image", r.json
    assert "end-of-image" in r.json["error"]["message"]
