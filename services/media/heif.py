"""HEIF / AVIF headers (ISO base media file format) read without decoding anything.

iPhones store HEIC; AVIF is the same container with an AV1 payload. The gateway must
know a photo's pixel count before anything decodes it (a 2 KB file can claim 30000x30000),
and neither libheif nor libavif offers that without parsing far more than the header.
This reads only the ``ftyp`` and ``meta`` boxes: the primary item, its ``ispe`` (coded
size, for grids the whole canvas), ``clap`` (crop), ``irot`` and ``imir``.

HEIF transformations are normative and EXIF orientation in these files is informational
(libheif applies ``irot``/``imir`` and ignores EXIF; Pillow's AVIF plugin turns them into
the EXIF orientation it reports), so the displayed orientation comes from the boxes only.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
AVIF_BRANDS = frozenset({b"avif", b"avis"})
_GENERIC_BRANDS = frozenset({b"mif1", b"msf1", b"miaf"})

MAX_META_BYTES = 4 * 1024 * 1024  # iPhone metas are a few KB; a larger one is hostile or broken
MAX_ENTRIES = 65_536
MAX_TOP_BOXES = 64  # boxes walked before 'meta'; real files have ftyp, meta at the front


class HeifHeaderError(ValueError):
    """The container is malformed or lacks what a still image needs."""


@dataclass(frozen=True)
class HeifHeader:
    kind: str  # "heic" or "avif"
    width: int  # coded size of the primary item (what a decoder allocates)
    height: int
    display_width: int  # after crop and rotation: what a viewer shows
    display_height: int
    orientation: int  # EXIF-style code 1..8 equivalent of irot/imir


def sniff(head: bytes) -> str | None:
    """ "heic", "avif" or None from a file's first bytes (an ``ftyp`` box with its brands)."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return None
    size = int.from_bytes(head[:4], "big")
    brands = [head[8:12]] + [head[i : i + 4] for i in range(16, min(size, len(head)) - 3, 4)]
    if any(b in AVIF_BRANDS for b in brands):
        return "avif"
    if any(b in HEIC_BRANDS for b in brands):
        return "heic"
    return None


def read_header(stream: BinaryIO) -> HeifHeader:
    stream.seek(0)
    end = _size(stream)
    kind = None
    meta = None
    pos = 0
    for _ in range(MAX_TOP_BOXES):
        if pos + 8 > end:
            break
        btype, start, bend = _box_at(stream, pos, end)
        if btype == b"ftyp":
            stream.seek(start)
            kind = sniff(struct.pack(">I", bend - pos) + b"ftyp" + stream.read(min(bend - start, 256)))
        elif btype == b"meta":
            if bend - start > MAX_META_BYTES:
                raise HeifHeaderError(f"the meta box is {bend - start} bytes; at most {MAX_META_BYTES} are read")
            stream.seek(start)
            meta = stream.read(bend - start)
            break
        pos = bend
    if kind is None:
        raise HeifHeaderError("no HEIF/AVIF brand in the file type box")
    if meta is None or len(meta) < 4:
        raise HeifHeaderError("no meta box (an image sequence, or cut short)")
    return _parse_meta(kind, meta)


def _size(stream: BinaryIO) -> int:
    here = stream.tell()
    stream.seek(0, 2)
    n = stream.tell()
    stream.seek(here)
    return n


def _box_at(stream: BinaryIO, pos: int, end: int) -> tuple[bytes, int, int]:
    """(type, payload start, box end) of the box at ``pos`` in a file of ``end`` bytes."""
    stream.seek(pos)
    head = stream.read(16)
    if len(head) < 8:
        raise HeifHeaderError("a box header is cut short")
    size, btype = struct.unpack(">I4s", head[:8])
    start = pos + 8
    if size == 1:
        if len(head) < 16:
            raise HeifHeaderError("a box header is cut short")
        size = struct.unpack(">Q", head[8:16])[0]
        start += 8
    elif size == 0:
        size = end - pos
    if size < start - pos or pos + size > end:
        raise HeifHeaderError(f"box {btype!r} claims {size} bytes past the end of the file")
    return btype, start, pos + size


def _children(buf: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of each box in ``buf[start:end]``."""
    pos = start
    n = 0
    while pos + 8 <= end:
        n += 1
        if n > MAX_ENTRIES:
            raise HeifHeaderError("too many boxes")
        size, btype = struct.unpack_from(">I4s", buf, pos)
        hdr = 8
        if size == 1:
            if pos + 16 > end:
                raise HeifHeaderError("a box header is cut short")
            size = struct.unpack_from(">Q", buf, pos + 8)[0]
            hdr = 16
        elif size == 0:
            size = end - pos
        if size < hdr or pos + size > end:
            raise HeifHeaderError(f"box {btype!r} overruns its parent")
        yield btype, pos + hdr, pos + size
        pos += size


def _u(buf: bytes, pos: int, n: int, limit: int) -> int:
    if pos + n > limit:
        raise HeifHeaderError("a box is cut short")
    return int.from_bytes(buf[pos : pos + n], "big")


def _parse_meta(kind: str, meta: bytes) -> HeifHeader:
    end = len(meta)
    primary = None
    props: list[tuple[bytes, int, int]] = []  # ipco children, 1-based index in ipma
    assoc: dict[int, list[int]] = {}
    for btype, s, e in _children(meta, 4, end):  # meta is a FullBox: skip version+flags
        if btype == b"pitm":
            version = meta[s] if s < e else 0
            primary = _u(meta, s + 4, 2 if version == 0 else 4, e)
        elif btype == b"iprp":
            for ctype, cs, ce in _children(meta, s, e):
                if ctype == b"ipco":
                    props = list(_children(meta, cs, ce))
                elif ctype == b"ipma":
                    _read_ipma(meta, cs, ce, assoc)
    if primary is None:
        raise HeifHeaderError("no primary item")
    width = height = None
    disp_w = disp_h = None
    rotation = 0
    mirror: int | None = None
    for index in assoc.get(primary, []):
        if not 1 <= index <= len(props):
            raise HeifHeaderError(f"property index {index} out of range")
        ptype, ps, pe = props[index - 1]
        if ptype == b"ispe":
            width, height = _u(meta, ps + 4, 4, pe), _u(meta, ps + 8, 4, pe)
            disp_w, disp_h = width, height
        elif ptype == b"clap" and disp_w is not None:
            wn, wd, hn, hd = struct.unpack_from(">iIiI", meta, ps) if ps + 16 <= pe else (0, 0, 0, 0)
            if wd and hd and wn > 0 and hn > 0:
                disp_w, disp_h = min(disp_w, round(wn / wd)), min(disp_h, round(hn / hd))
        elif ptype == b"irot" and ps < pe:
            turn = meta[ps] & 3
            rotation = (rotation + turn) % 4
            if turn % 2 and disp_w is not None:
                disp_w, disp_h = disp_h, disp_w
        elif ptype == b"imir" and ps < pe:
            mirror = meta[ps] & 1
    if not width or not height:
        raise HeifHeaderError("the primary image has no size (ispe)")
    return HeifHeader(kind, width, height, disp_w or width, disp_h or height, _orientation(rotation, mirror))


def _read_ipma(buf: bytes, s: int, e: int, out: dict[int, list[int]]) -> None:
    version, flags = buf[s], _u(buf, s + 1, 3, e)
    count = _u(buf, s + 4, 4, e)
    if count > MAX_ENTRIES:
        raise HeifHeaderError("too many property associations")
    pos = s + 8
    id_bytes = 2 if version < 1 else 4
    wide = flags & 1
    for _ in range(count):
        item = _u(buf, pos, id_bytes, e)
        pos += id_bytes
        n = _u(buf, pos, 1, e)
        pos += 1
        indexes = []
        for _ in range(n):
            if wide:
                indexes.append(_u(buf, pos, 2, e) & 0x7FFF)
                pos += 2
            else:
                indexes.append(_u(buf, pos, 1, e) & 0x7F)
                pos += 1
        out[item] = indexes


# irot turns anticlockwise; imir axis 0 mirrors left-right, 1 top-bottom (applied after irot
# in files written by libheif and Apple). EXIF codes: 1 none, 2 flip LR, 3 180, 4 flip TB,
# 5 transpose, 6 90 clockwise, 7 transverse, 8 90 anticlockwise.
_ORIENTATION = {
    (0, None): 1,
    (1, None): 8,
    (2, None): 3,
    (3, None): 6,
    (0, 0): 2,
    (0, 1): 4,
    (1, 0): 7,
    (1, 1): 5,
    (2, 0): 4,
    (2, 1): 2,
    (3, 0): 5,
    (3, 1): 7,
}


def _orientation(rotation: int, mirror: int | None) -> int:
    return _ORIENTATION[(rotation, mirror)]
