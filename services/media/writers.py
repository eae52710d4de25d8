"""Image writers that take the picture a strip of rows at a time.

A 24 MP photo upscaled twice is 96 MP: 288 MB as 8-bit BGR, 384 MB more in Pillow's
4-byte layout, before the encoder's own buffers. Holding it whole to encode it is what
took the enhance worker past its memory limit. These writers keep one strip in memory:

- JPEG: each strip is a JPEG of its own encoded by Pillow (libjpeg-turbo) with a restart
  marker after every MCU row; the strips' entropy-coded data are joined under the first
  strip's headers. Restart markers reset the DC predictors, so the joined stream is the
  image a one-shot encode gives (pixel for pixel; the test checks it), 2 bytes larger per
  MCU row.
- PNG: rows filtered (the five PNG filters, picked per row as libpng's heuristic does)
  and fed to one zlib stream.
- TIFF: Deflate-compressed strips with the horizontal predictor, the directory written
  last (offsets are known then), EXIF and GPS as sub-directories.
- BMP: uncompressed top-down rows.
- WebP: libwebp encodes whole pictures only, so this one gathers the image; the caller
  bounds WebP outputs (:func:`services.contracts.photo_cost.output_limit`).

Rows come in as HxWx3 uint8 BGR, top to bottom; ``close()`` checks that every row came.
Metadata (ICC profile, EXIF, DPI) goes where each format keeps it; BMP keeps only DPI.
"""
from __future__ import annotations

import io
import struct
import zlib
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, TiffImagePlugin

from services.media.metadata import JPEG_MAX_EXIF, PhotoMeta

STRIP_BYTES = 4 * 1024 * 1024  # uncompressed pixels an encoder holds at a time
FORMATS = ("jpeg", "png", "webp", "bmp", "tiff")
# Largest side a format can store (JPEG: 16-bit sizes; WebP: 14-bit).
MAX_SIDE = {"jpeg": 65_535, "webp": 16_383, "png": 2**31 - 1, "tiff": 2**32 - 1, "bmp": 2**31 - 1}
# Bytes per pixel a writer holds besides its strip: WebP gathers the picture (3), Pillow
# copies it (4) and libwebp converts it to YUV with its own buffers (about 4 more).
WHOLE_IMAGE_BYTES_PER_PIXEL = {"webp": 11}


class WriterError(Exception):
    pass


class _Writer:
    def __init__(self, fp: BinaryIO, width: int, height: int, meta: PhotoMeta):
        if width < 1 or height < 1:
            raise WriterError(f"cannot write an empty {width}x{height} image")
        self.fp, self.width, self.height, self.meta = fp, width, height, meta
        self.rows = 0

    def write(self, rows: np.ndarray) -> None:
        if rows.ndim != 3 or rows.shape[1:] != (self.width, 3) or rows.dtype != np.uint8:
            raise WriterError(f"expected rows of shape (n, {self.width}, 3) uint8, got {rows.dtype} {rows.shape}")
        if self.rows + rows.shape[0] > self.height:
            raise WriterError(f"more than {self.height} rows written")
        self.rows += rows.shape[0]
        self._write(rows)

    def close(self) -> None:
        if self.rows != self.height:
            raise WriterError(f"{self.rows} of {self.height} rows written")
        self._close()

    def _write(self, rows: np.ndarray) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError


class _Strips(_Writer):
    """Gathers rows into strips of ``strip_rows`` (the last may be shorter)."""

    strip_rows = 1

    def __init__(self, fp: BinaryIO, width: int, height: int, meta: PhotoMeta) -> None:
        super().__init__(fp, width, height, meta)
        self._buf = np.empty((min(self.strip_rows, height), width, 3), np.uint8)
        self._fill = 0
        self._done = 0  # rows encoded

    def _write(self, rows: np.ndarray) -> None:
        i = 0
        while i < rows.shape[0]:
            n = min(rows.shape[0] - i, self._buf.shape[0] - self._fill)
            self._buf[self._fill:self._fill + n] = rows[i:i + n]
            self._fill += n
            i += n
            if self._fill == self._buf.shape[0] or self._done + self._fill == self.height:
                self._strip(self._buf[:self._fill], last=self._done + self._fill == self.height)
                self._done += self._fill
                self._fill = 0

    def _strip(self, bgr: np.ndarray, last: bool) -> None:
        raise NotImplementedError


def _rows_for(width: int, multiple: int) -> int:
    rows = max(1, STRIP_BYTES // (width * 3))
    return max(multiple, rows // multiple * multiple)


# ------------------------------------------------------------------------------- JPEG

_SOF0, _DHT, _DQT, _DRI, _SOS, _EOI = 0xC0, 0xC4, 0xDB, 0xDD, 0xDA, 0xD9
_RST7 = b"\xff\xd7"


class JpegWriter(_Strips):
    def __init__(self, fp: BinaryIO, width: int, height: int, meta: PhotoMeta, quality: int = 95) -> None:
        # Full-resolution chroma at high quality: restored faces and text edges smear
        # visibly with 4:2:0 subsampling, and the size cost is modest.
        self.subsampling = "4:4:4" if quality >= 90 else "4:2:0"
        mcu = 8 if self.subsampling == "4:4:4" else 16
        # Restart markers count 0..7: strips of 8k MCU rows keep each strip's own
        # numbering right in the joined stream, with RST7 between strips.
        self.strip_rows = _rows_for(width, 8 * mcu)
        self.quality = quality
        super().__init__(fp, width, height, meta)
        self._tables: bytes | None = None

    def _strip(self, bgr: np.ndarray, last: bool) -> None:
        first = self._tables is None
        opts: dict[str, Any] = {"format": "JPEG", "quality": self.quality, "subsampling": self.subsampling,
                                "restart_marker_rows": 1}
        if first:
            opts.update(_jpeg_meta(self.meta, self.width, self.height))
        out = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(bgr[..., ::-1])).save(out, **opts)
        data = out.getvalue()
        header_end, sof_height_at, tables = _jpeg_layout(data)
        if data[-2:] != b"\xff\xd9":
            raise WriterError("the JPEG encoder's output does not end with EOI")
        entropy = memoryview(data)[header_end:-2]
        if first:
            self._tables = tables
            head = bytearray(data[:header_end])
            struct.pack_into(">H", head, sof_height_at, self.height)
            self.fp.write(head)
        else:
            if tables != self._tables:
                raise WriterError("the JPEG encoder changed its tables between strips")
            self.fp.write(_RST7)
        self.fp.write(entropy)

    def _close(self) -> None:
        self.fp.write(b"\xff\xd9")


def _jpeg_meta(meta: PhotoMeta, width: int, height: int) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    exif = meta.exif_for(width, height, max_bytes=JPEG_MAX_EXIF)
    if exif:
        opts["exif"] = exif
    if meta.icc_profile:
        opts["icc_profile"] = meta.icc_profile
    if meta.dpi:
        opts["dpi"] = meta.dpi
    return opts


def _jpeg_layout(data: bytes) -> tuple[int, int, bytes]:
    """(end of the SOS header, offset of SOF0's height, the coding tables as bytes with the
    height zeroed): what must be equal for two strips' scans to be joined."""
    pos, tables, sof_height_at = 2, [], None
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise WriterError("malformed JPEG from the encoder")
        marker = data[pos + 1]
        length = struct.unpack_from(">H", data, pos + 2)[0]
        seg = data[pos:pos + 2 + length]
        if marker == _SOF0:
            sof_height_at = pos + 5
            tables.append(seg[:5] + b"\0\0" + seg[7:])
        elif marker in (_DHT, _DQT, _DRI):
            tables.append(seg)
        elif marker == _SOS:
            if sof_height_at is None:
                raise WriterError("the JPEG encoder wrote no baseline frame header")
            tables.append(seg)
            return pos + 2 + length, sof_height_at, b"".join(tables)
        elif 0xC1 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            raise WriterError("the JPEG encoder wrote a non-baseline frame")
        pos += 2 + length
    raise WriterError("no scan in the encoder's JPEG")


# ------------------------------------------------------------------------------- PNG


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


class PngWriter(_Strips):
    IDAT_BYTES = 1024 * 1024

    def __init__(self, fp: BinaryIO, width: int, height: int, meta: PhotoMeta, level: int = 6) -> None:
        # Small blocks: the five candidate filters of a block live as int16 at once.
        self.strip_rows = max(1, (STRIP_BYTES // 4) // (width * 3))
        super().__init__(fp, width, height, meta)
        self._z = zlib.compressobj(level)
        self._prev = np.zeros((1, width * 3), np.uint8)
        self._pending = bytearray()
        fp.write(b"\x89PNG\r\n\x1a\n")
        fp.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        if meta.icc_profile:
            fp.write(_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(meta.icc_profile)))
        if meta.dpi:
            ppm = [max(1, round(d / 0.0254)) for d in meta.dpi]
            fp.write(_chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
        exif = meta.exif_for(width, height)
        if exif:
            fp.write(_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))

    def _strip(self, bgr: np.ndarray, last: bool) -> None:
        rgb = np.ascontiguousarray(bgr[..., ::-1]).reshape(bgr.shape[0], -1)
        filtered = png_filter(rgb, self._prev[-1])
        self._prev = rgb[-1:].copy()
        self._pending += self._z.compress(filtered)
        self._flush_idat(final=False)

    def _flush_idat(self, final: bool) -> None:
        while len(self._pending) >= self.IDAT_BYTES or (final and self._pending):
            n = min(len(self._pending), self.IDAT_BYTES)
            self.fp.write(_chunk(b"IDAT", bytes(self._pending[:n])))
            del self._pending[:n]

    def _close(self) -> None:
        self._pending += self._z.flush()
        self._flush_idat(final=True)
        self.fp.write(_chunk(b"IEND", b""))


def png_filter(rows: np.ndarray, prior: np.ndarray, bpp: int = 3) -> bytes:
    """Rows (n, W*bpp) uint8 filtered for PNG, each prefixed by its filter type; ``prior``
    is the row above the first. Per row the filter with the smallest sum of absolute
    signed residuals wins (libpng's heuristic)."""
    x = rows.astype(np.int16)
    b = np.vstack([prior[None, :].astype(np.int16), x[:-1]])  # above
    a = np.zeros_like(x)
    a[:, bpp:] = x[:, :-bpp]  # left
    c = np.zeros_like(x)
    c[:, bpp:] = b[:, :-bpp]  # above left
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    candidates = np.stack([x, x - a, x - b, x - ((a + b) >> 1), x - paeth]).astype(np.uint8)
    del b, c, p, pa, pb, pc, paeth
    cost = np.abs(candidates.view(np.int8).astype(np.int32)).sum(axis=2)  # (5, n)
    best = cost.argmin(axis=0)
    out = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    out[:, 0] = best
    out[:, 1:] = candidates[best, np.arange(rows.shape[0])]
    return out.tobytes()


# ------------------------------------------------------------------------------- TIFF

_ASCII_IFD0 = (270, 271, 272, 305, 306, 315, 33432)  # description, make, model, software, date, artist, (c)
_SHORT, _LONG, _RATIONAL, _UNDEFINED, _ASCII = 3, 4, 5, 7, 2


class TiffWriter(_Strips):
    def __init__(self, fp: BinaryIO, width: int, height: int, meta: PhotoMeta, level: int = 6) -> None:
        self.strip_rows = max(1, (STRIP_BYTES // 8) // (width * 3))
        super().__init__(fp, width, height, meta)
        self.level = level
        self._offsets: list[int] = []
        self._counts: list[int] = []
        fp.write(b"II*\x00\x00\x00\x00\x00")  # the directory's offset is filled in at close

    def _strip(self, bgr: np.ndarray, last: bool) -> None:
        rgb = np.ascontiguousarray(bgr[..., ::-1]).reshape(bgr.shape[0], -1)
        diff = rgb.copy()
        diff[:, 3:] -= rgb[:, :-3]  # predictor 2: horizontal differences per sample (mod 256)
        data = zlib.compress(diff.tobytes(), self.level)
        self._offsets.append(self.fp.tell())
        self._counts.append(len(data))
        self.fp.write(data)

    def _close(self) -> None:
        if self.fp.tell() % 2:
            self.fp.write(b"\0")
        ifd_at = self.fp.tell()
        dpi = self.meta.dpi or (72.0, 72.0)
        entries: list[tuple[int, int, int, bytes]] = [
            (256, _LONG, 1, struct.pack("<I", self.width)),
            (257, _LONG, 1, struct.pack("<I", self.height)),
            (258, _SHORT, 3, struct.pack("<3H", 8, 8, 8)),
            (259, _SHORT, 1, struct.pack("<H", 8)),  # Adobe Deflate
            (262, _SHORT, 1, struct.pack("<H", 2)),  # RGB
            (273, _LONG, len(self._offsets), struct.pack(f"<{len(self._offsets)}I", *self._offsets)),
            (277, _SHORT, 1, struct.pack("<H", 3)),
            (278, _LONG, 1, struct.pack("<I", self.strip_rows)),
            (279, _LONG, len(self._counts), struct.pack(f"<{len(self._counts)}I", *self._counts)),
            (282, _RATIONAL, 1, _rational(dpi[0])),
            (283, _RATIONAL, 1, _rational(dpi[1])),
            (284, _SHORT, 1, struct.pack("<H", 1)),
            (296, _SHORT, 1, struct.pack("<H", 2)),  # inches
            (317, _SHORT, 1, struct.pack("<H", 2)),  # horizontal predictor
        ]
        if self.meta.icc_profile:
            entries.append((34675, _UNDEFINED, len(self.meta.icc_profile), self.meta.icc_profile))
        sub_ifds = []
        exif_bytes = self.meta.exif_for(self.width, self.height)
        if exif_bytes:
            exif = Image.Exif()
            exif.load(exif_bytes)
            for tag in _ASCII_IFD0:
                value = exif.get(tag)
                if isinstance(value, str) and value:
                    entries.append((tag, _ASCII, len(value.encode("latin-1", "replace")) + 1,
                                    value.encode("latin-1", "replace") + b"\0"))
            for tag in (34665, 34853):  # Exif, GPS
                sub = dict(exif.get_ifd(tag))
                if 0xA005 in sub and not isinstance(sub[0xA005], dict):  # Interop: a sub-sub-directory
                    sub[0xA005] = exif.get_ifd(0xA005)
                if sub:
                    sub_ifds.append((tag, sub))
                    entries.append((tag, _LONG, 1, b"\0\0\0\0"))  # offset filled below
        entries.sort(key=lambda e: e[0])
        # Layout after the directory: values too big for their entry, then sub-directories.
        n = len(entries)
        data_at = ifd_at + 2 + 12 * n + 4
        blob = bytearray()
        raw_entries = []
        positions = {}
        for tag, typ, count, value in entries:
            if len(value) <= 4:
                raw_entries.append(struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\0"))
            else:
                at = data_at + len(blob)
                blob += value + (b"\0" if len(value) % 2 else b"")
                raw_entries.append(struct.pack("<HHI", tag, typ, count) + struct.pack("<I", at))
            positions[tag] = len(raw_entries) - 1
        for tag, sub in sub_ifds:
            at = data_at + len(blob)
            ifd = TiffImagePlugin.ImageFileDirectory_v2(ifh=b"II*\x00\x08\x00\x00\x00", group=tag)
            for k, v in sub.items():
                ifd[k] = v
            blob += ifd.tobytes(at)
            if len(blob) % 2:
                blob += b"\0"
            i = positions[tag]
            raw_entries[i] = raw_entries[i][:8] + struct.pack("<I", at)
        self.fp.write(struct.pack("<H", n) + b"".join(raw_entries) + b"\0\0\0\0" + bytes(blob))
        end = self.fp.tell()
        self.fp.seek(4)
        self.fp.write(struct.pack("<I", ifd_at))
        self.fp.seek(end)


def _rational(value: float) -> bytes:
    return struct.pack("<II", max(1, round(value * 1000)), 1000)


# ------------------------------------------------------------------------------- BMP


class BmpWriter(_Writer):
    def __init__(self, fp: BinaryIO, width: int, height: int, meta: PhotoMeta) -> None:
        super().__init__(fp, width, height, meta)
        self.stride = (width * 3 + 3) & ~3
        size = 54 + self.stride * height
        if size >= 2**32:
            raise WriterError(f"a {width}x{height} BMP is over the format's 4 GiB")
        ppm = [max(0, round(d / 0.0254)) for d in (meta.dpi or (0, 0))]
        fp.write(b"BM" + struct.pack("<IHHI", size, 0, 0, 54))
        # Negative height: rows top to bottom, as they arrive.
        fp.write(struct.pack("<IiiHHIIiiII", 40, width, -height, 1, 24, 0, self.stride * height,
                             ppm[0], ppm[1], 0, 0))
        self._pad = b"\0" * (self.stride - width * 3)

    def _write(self, rows: np.ndarray) -> None:
        if not self._pad:
            self.fp.write(np.ascontiguousarray(rows).tobytes())
            return
        for row in rows:
            self.fp.write(row.tobytes())
            self.fp.write(self._pad)

    def _close(self) -> None:
        pass


# ------------------------------------------------------------------------------- WebP


class WebpWriter(_Writer):
    def __init__(self, fp: BinaryIO, width: int, height: int, meta: PhotoMeta, quality: int = 95) -> None:
        super().__init__(fp, width, height, meta)
        if max(width, height) > MAX_SIDE["webp"]:
            raise WriterError(f"WebP stores at most {MAX_SIDE['webp']} pixels a side, not {width}x{height}")
        self.quality = quality
        self._img: np.ndarray | None = np.empty((height, width, 3), np.uint8)

    def _write(self, rows: np.ndarray) -> None:
        assert self._img is not None, "written after close"
        self._img[self.rows - rows.shape[0]:self.rows] = rows[..., ::-1]

    def _close(self) -> None:
        opts: dict[str, Any] = {"format": "WEBP", "quality": self.quality}
        exif = self.meta.exif_for(self.width, self.height)
        if exif:
            opts["exif"] = exif
        if self.meta.icc_profile:
            opts["icc_profile"] = self.meta.icc_profile
        assert self._img is not None, "closed twice"
        im = Image.fromarray(self._img)
        self._img = None  # the pixels go as soon as the file is written
        im.save(self.fp, **opts)


def open_writer(fmt: str, fp: BinaryIO, width: int, height: int, meta: PhotoMeta | None = None,
                *, quality: int = 95) -> _Writer:
    """A writer for ``fmt``; ``fp`` must be seekable for TIFF (its directory comes last)."""
    meta = meta or PhotoMeta()
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be within 1..100, got {quality}")
    if fmt in MAX_SIDE and max(width, height) > MAX_SIDE[fmt]:
        raise WriterError(f"{fmt.upper()} stores at most {MAX_SIDE[fmt]} pixels a side, not {width}x{height}")
    if fmt == "jpeg":
        return JpegWriter(fp, width, height, meta, quality)
    if fmt == "png":
        return PngWriter(fp, width, height, meta)
    if fmt == "tiff":
        return TiffWriter(fp, width, height, meta)
    if fmt == "bmp":
        return BmpWriter(fp, width, height, meta)
    if fmt == "webp":
        return WebpWriter(fp, width, height, meta, quality)
    raise ValueError(f"unknown image format {fmt!r}; expected one of {list(FORMATS)}")
