"""Whether an image file is whole, read from its structure without decoding a pixel.

An upload cut short (a dropped connection, a half-copied card) must be refused when it
arrives, not accepted and then failed minutes later in a worker. Each format says where
it ends: JPEG an EOI marker after its scan data, PNG an IEND chunk after chunks that each
carry a CRC, WebP a RIFF size, an uncompressed BMP its rows. Reading the file once
costs ~1 ms per MB here; nothing is decoded or held but a 64 KiB buffer.
TIFF, HEIC and AVIF are not checked here: a damaged one still fails in the worker,
with a clear error.
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

_CHUNK = 64 * 1024


def missing_end(stream: BinaryIO, fmt: str, size: int) -> str | None:
    """What is wrong with the file's structure (cut short, damaged), or None if whole.
    Leaves the stream at 0."""
    check = _CHECKS.get(fmt)
    if check is None:
        return None
    stream.seek(0)
    try:
        return check(stream, size)
    finally:
        stream.seek(0)


def _jpeg(stream: BinaryIO, size: int) -> str | None:
    stream.seek(2)  # after SOI
    while True:
        b = stream.read(1)
        while b == b"\xff":  # fill bytes before a marker
            b = stream.read(1)
        if not b:
            return "the jpeg ends before its image data"
        marker = b[0]
        if marker == 0xD9:
            return "the jpeg ends before its image data"
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            continue  # markers without a length
        raw = stream.read(2)
        if len(raw) < 2:
            return "the jpeg is cut short in its header"
        length = struct.unpack(">H", raw)[0]
        if length < 2:
            return "the jpeg has a damaged segment"
        stream.seek(length - 2, 1)
        if stream.tell() > size:
            return "the jpeg is cut short in its header"
        if marker == 0xDA:  # start of scan: the entropy-coded data follows
            break
    # Inside scan data 0xFF is always followed by 0x00 or a restart marker, so the first
    # FF D9 after the scan starts is its end (an EXIF thumbnail's EOI comes before it).
    tail = b""
    while chunk := stream.read(_CHUNK):
        if b"\xff\xd9" in tail + chunk:
            return None
        tail = chunk[-1:]
    return "the jpeg is cut short: its end-of-image marker is missing"


def _png(stream: BinaryIO, size: int) -> str | None:
    stream.seek(8)
    while True:
        head = stream.read(8)
        if len(head) < 8:
            return "the png is cut short: its IEND chunk is missing"
        length, ctype = struct.unpack(">I4s", head)
        if stream.tell() + length + 4 > size:
            return f"the png is cut short inside its {ctype.decode('latin-1')} chunk"
        crc = zlib.crc32(ctype)
        left = length
        while left:
            part = stream.read(min(left, _CHUNK))
            crc = zlib.crc32(part, crc)
            left -= len(part)
        stored = struct.unpack(">I", stream.read(4))[0]
        # As libpng: a damaged critical chunk (upper-case first letter) is an error, a
        # damaged ancillary one (metadata) is dropped by decoders, so not refused.
        if stored != crc and ctype[:1].isupper():
            return f"the png's {ctype.decode('latin-1')} chunk is damaged (CRC mismatch)"
        if ctype == b"IEND":
            return None


def _webp(stream: BinaryIO, size: int) -> str | None:
    head = stream.read(12)
    declared = struct.unpack("<I", head[4:8])[0] + 8
    if declared > size:
        return f"the webp is cut short ({size} of the {declared} bytes its header declares)"
    return None


def _bmp(stream: BinaryIO, size: int) -> str | None:
    head = stream.read(34)
    if len(head) < 34:
        return "the bmp is cut short in its header"
    offset = struct.unpack("<I", head[10:14])[0]
    header_size, width, height, _planes, bpp, compression = struct.unpack("<IiiHHI", head[14:34])
    if header_size < 40 or compression not in (0, 3):  # run-length BMPs carry no row size
        return None
    rows = ((abs(width) * bpp + 31) // 32) * 4 * abs(height)
    if offset + rows > size:
        return f"the bmp is cut short ({size} of {offset + rows} bytes)"
    return None


_CHECKS = {"jpeg": _jpeg, "png": _png, "webp": _webp, "bmp": _bmp}
