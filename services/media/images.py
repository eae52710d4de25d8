"""Upload validation and image I/O shared by the gateway and every worker.

Two entry points with different costs:

- :func:`inspect_image` reads the file *header* only (size, magic bytes, pixel count,
  EXIF orientation). The gateway runs it on every upload, so it never decodes pixels:
  a decompression bomb is refused from the numbers in its header.
- :func:`decode_bgr` decodes fully into the ``HxWx3`` uint8 BGR array the pipelines
  use, normalising every pixel layout we accept to that one shape.

Only numpy and Pillow (with pillow-heif for HEIC pixels): this module is imported by
the web gateway, which must not pull in cv2 or torch. HEIC and AVIF headers are read
by :mod:`services.media.heif`, so their limits are checked before any codec runs.

Pillow's process-wide knobs are deliberately left alone. ``Image.MAX_IMAGE_PIXELS``
is bypassed (the format plugins are constructed directly, so our ``max_pixels`` is the
limit that applies, checked before any pixel is read) and ``LOAD_TRUNCATED_IMAGES``
is never set; truncation is detected by watching reads instead, so it is refused
even if some other library in the process turned that flag on.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
from PIL import (
    AvifImagePlugin,
    BmpImagePlugin,
    Image,
    ImageFile,
    JpegImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
)

from services.media import completeness, heif
from services.media.metadata import PhotoMeta, from_pillow, from_raw
from services.media.writers import open_writer

__all__ = [
    "FORMAT_EXTENSION",
    "FORMAT_MIME",
    "ImageError",
    "ImageInfo",
    "decode_bgr",
    "decode_photo",
    "encode_image",
    "inspect_image",
    "sniff_format",
]

FORMAT_MIME: dict[str, str] = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "heic": "image/heic",
    "avif": "image/avif",
}
# Formats an image can be written in; HEIC and AVIF are read only (their results are JPEG).
OUTPUT_FORMATS = ("jpeg", "png", "webp", "bmp", "tiff")
# Without the dot: callers build names as f"{stem}.{ext}".
FORMAT_EXTENSION: dict[str, str] = {
    "jpeg": "jpg",
    "png": "png",
    "webp": "webp",
    "bmp": "bmp",
    "tiff": "tiff",
    "heic": "heic",
    "avif": "avif",
}

_STATUS_BY_CODE = {
    "empty_file": 400,
    "invalid_image": 400,
    "file_too_large": 413,
    "too_many_pixels": 413,
    "unsupported_format": 415,
}

_ALLOWED_TEXT = "JPEG, PNG, WebP, BMP, TIFF, HEIC or AVIF"


class ImageError(Exception):
    """A client-side problem with an uploaded image, carrying its API error code and HTTP status."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        if status is None:
            status = _STATUS_BY_CODE[code]
        # All three in args so the exception survives pickling and Celery's
        # exception serialisation (both rebuild it as cls(*args)).
        super().__init__(code, message, status)
        self.code = code
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class ImageInfo:
    format: str  # one of FORMAT_MIME's keys
    width: int  # as displayed, i.e. after EXIF orientation
    height: int
    mode: str  # Pillow's mode name for the stored pixels ("RGB", "P", "I;16", "CMYK", ...)
    mime: str
    extension: str  # without the dot
    size_bytes: int


# --------------------------------------------------------------------------- sniffing

_BMP_DIB_HEADER_SIZES = {12, 40, 52, 56, 64, 108, 124}
SNIFF_BYTES = 64  # an ftyp box lists its brands within the first 64 bytes


def sniff_format(head: bytes) -> str | None:
    """The allowed format named by the file's first bytes, or None.

    Extensions and client-sent content types are ignored: they are whatever the user's
    machine says. Only the allowlist is recognised (no GIF, BigTIFF, ...).
    """
    head = bytes(head[:SNIFF_BYTES])
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    # "BM" alone is two printable letters (a text file starting "BMW ..."): also require
    # a DIB header size that some BMP version actually uses.
    if len(head) >= 18 and head[:2] == b"BM":
        if int.from_bytes(head[14:18], "little") in _BMP_DIB_HEADER_SIZES:
            return "bmp"
    return heif.sniff(head)


# --------------------------------------------------------------------------- streams


@contextmanager
def _rewound(data: bytes | BinaryIO, *, limit: int | None = None) -> Iterator[BinaryIO]:
    """A seekable stream over ``data`` positioned at 0, left at 0 afterwards.

    The image is taken to start at offset 0 of a caller's stream, whatever its position.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        yield io.BytesIO(data)
        return
    if not _is_seekable(data):
        # A pipe cannot be rewound: buffer it, but never more than one byte past the
        # limit, which is enough to know the limit was exceeded.
        yield io.BytesIO(data.read(-1 if limit is None else limit + 1))
        return
    data.seek(0)
    try:
        yield data
    finally:
        data.seek(0)


def _is_seekable(stream: BinaryIO) -> bool:
    try:
        return bool(stream.seekable())
    except AttributeError:
        return hasattr(stream, "seek")


def _stream_size(stream: BinaryIO) -> int:
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    return size


class _EofGuard:
    """Read-only view of a stream that remembers whether a reader asked for bytes past its end.

    Pillow reports truncation by such a read, and only raises for it while the global
    ``ImageFile.LOAD_TRUNCATED_IMAGES`` is False; ML libraries are known to flip that
    flag at import. Watching the reads makes our answer independent of it.
    It also hides ``fileno()``, so libtiff reads through us instead of an OS file
    descriptor whose offset Python's buffering does not track.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.armed = True
        self.read_past_end = False

    def read(self, size: int | None = -1) -> bytes:
        data = self._raw.read(-1 if size is None else size)
        if not data and size != 0 and self.armed:
            self.read_past_end = True
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()


# --------------------------------------------------------------------------- headers

_EXIF_ORIENTATION = 0x0112

# Exceptions Pillow (and zlib under it) raise for malformed data; anything else is our bug.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
    zlib.error,
)

# Direct plugin construction instead of Image.open(): Image.open() also applies Pillow's
# global MAX_IMAGE_PIXELS, which would make Pillow's default, not our setting, decide which
# images are "too big". The classes are used by all Pillow versions we support (>= 10.3).
# JpegImageFile rather than JPEG's factory: multi-picture JPEGs (MPO, common from phones)
# then open as their primary image, like any viewer shows them.
# Pillow's openers take any object with read/seek/tell (typeshed says a file).
_PILLOW_OPENERS: dict[str, Callable[[Any], ImageFile.ImageFile]] = {
    "jpeg": JpegImagePlugin.JpegImageFile,
    "png": PngImagePlugin.PngImageFile,
    "webp": WebPImagePlugin.WebPImageFile,
    "bmp": BmpImagePlugin.BmpImageFile,
    "tiff": TiffImagePlugin.TiffImageFile,
    "avif": AvifImagePlugin.AvifImageFile,
}
_HEIF = ("heic", "avif")


@dataclass(frozen=True)
class _Header:
    format: str
    width: int  # as stored
    height: int
    mode: str
    orientation: int  # EXIF 1..8
    display: tuple[int, int] | None = None  # HEIF: after its crop and rotation boxes

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def oriented_size(self) -> tuple[int, int]:
        if self.display is not None:
            return self.display
        # Orientations 5..8 rotate by 90 degrees.
        if self.orientation >= 5:
            return self.height, self.width
        return self.width, self.height


def _invalid(detail: str) -> ImageError:
    return ImageError("invalid_image", f"the file is not a readable image ({detail})")


def _sniff_stream(stream: BinaryIO) -> str:
    stream.seek(0)
    fmt = sniff_format(stream.read(SNIFF_BYTES))
    stream.seek(0)
    if fmt is None:
        raise ImageError("unsupported_format", f"unsupported file type; upload a {_ALLOWED_TEXT} image")
    return fmt


def _read_header(stream: BinaryIO, fmt: str) -> _Header:
    """Dimensions, mode and orientation of the image in ``stream``, with no pixel decoded."""
    if fmt == "webp":
        # Pillow's WebP plugin reads the whole file and lets libwebp allocate the canvas
        # as it opens, so the header is parsed here instead.
        return _webp_header(stream)
    if fmt in _HEIF:
        # libheif and libavif parse (and allocate) far more than the size on open.
        try:
            h = heif.read_header(stream)
        except heif.HeifHeaderError as exc:
            raise _invalid(f"bad {fmt} header: {exc}") from exc
        return _Header(fmt, h.width, h.height, "RGB", h.orientation, (h.display_width, h.display_height))
    stream.seek(0)
    guard = _EofGuard(stream)
    try:
        im = _PILLOW_OPENERS[fmt](guard)
    except _DECODE_ERRORS as exc:
        raise _invalid(f"bad {fmt} header") from exc
    if guard.read_past_end:
        raise _invalid(f"the {fmt} header is cut short")
    orientation = _orientation(im, stream)
    return _Header(fmt, im.width, im.height, im.mode, orientation)


def _orientation(im: ImageFile.ImageFile, stream: BinaryIO) -> int:
    pos = stream.tell()
    try:
        if isinstance(im, PngImagePlugin.PngImageFile) and "exif" not in im.info:
            late = _png_late_exif(stream)
            if late is not None:
                im.info["exif"] = b"Exif\x00\x00" + late
        # Image.Image.getexif, not im.getexif: PNG's override decodes the whole image
        # to find an eXIf chunk after the pixel data, which _png_late_exif just did cheaply.
        value = Image.Image.getexif(im).get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - any EXIF damage
        # A corrupt EXIF block must not make an otherwise good photo unusable;
        # viewers also fall back to "as stored".
        value = 1
    finally:
        stream.seek(pos)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _png_late_exif(stream: BinaryIO) -> bytes | None:
    """Payload of an eXIf chunk that follows IDAT, found by hopping chunk headers."""
    stream.seek(8)
    while True:
        header = stream.read(8)
        if len(header) < 8:
            return None
        length, ctype = struct.unpack(">I4s", header)
        if ctype == b"eXIf":
            payload = stream.read(length)
            return payload if len(payload) == length else None
        if ctype == b"IEND":
            return None
        stream.seek(length + 4, io.SEEK_CUR)  # payload + CRC


_VP8X_ALPHA = 0x10


def _webp_header(stream: BinaryIO) -> _Header:
    """Canvas size, alpha and EXIF orientation from the RIFF chunks, without the bitstream."""
    stream.seek(12)
    size = None
    alpha = False
    exif = None
    first = True
    while True:
        chunk = stream.read(8)
        if len(chunk) < 8:
            break
        fourcc = chunk[:4]
        length = int.from_bytes(chunk[4:], "little")
        start = stream.tell()
        if first:
            size, alpha = _webp_first_chunk(fourcc, stream.read(min(length, 10)))
            if fourcc != b"VP8X":
                break  # simple formats hold just the bitstream
        elif fourcc == b"ALPH":
            alpha = True
        elif fourcc == b"EXIF":
            exif = stream.read(length)
        first = False
        stream.seek(start + length + (length & 1))  # chunks are padded to even sizes
    if size is None:
        raise _invalid("bad webp header")
    return _Header("webp", size[0], size[1], "RGBA" if alpha else "RGB", _exif_orientation(exif))


def _webp_first_chunk(fourcc: bytes, payload: bytes) -> tuple[tuple[int, int] | None, bool]:
    if fourcc == b"VP8X" and len(payload) >= 10:
        width = int.from_bytes(payload[4:7], "little") + 1
        height = int.from_bytes(payload[7:10], "little") + 1
        return (width, height), bool(payload[0] & _VP8X_ALPHA)
    if fourcc == b"VP8L" and len(payload) >= 5 and payload[0] == 0x2F:
        bits = int.from_bytes(payload[1:5], "little")
        size = ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        return size, bool((bits >> 28) & 1)
    # Lossy: a key frame (low bit clear) then the start code, then 14-bit dimensions.
    if fourcc == b"VP8 " and len(payload) >= 10 and not payload[0] & 1 and payload[3:6] == b"\x9d\x01\x2a":
        width = int.from_bytes(payload[6:8], "little") & 0x3FFF
        height = int.from_bytes(payload[8:10], "little") & 0x3FFF
        return ((width, height) if width and height else None), False
    return None, False


def _exif_orientation(exif: bytes | None) -> int:
    if not exif:
        return 1
    try:
        parsed = Image.Exif()
        parsed.load(exif)
        value = parsed.get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - same policy as _orientation
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


# --------------------------------------------------------------------------- limits


def _check_bytes(size: int, max_bytes: int) -> None:
    if size == 0:
        raise ImageError("empty_file", "the file is empty")
    if size > max_bytes:
        raise ImageError(
            "file_too_large",
            f"the file is larger than the limit of {_human_bytes(max_bytes)}",
        )


def _check_pixels(header: _Header, max_pixels: int) -> None:
    if header.pixels > max_pixels:
        raise ImageError(
            "too_many_pixels",
            f"the image is {header.width}x{header.height} = {header.pixels:,} pixels; the limit is {max_pixels:,}",
        )


def _human_bytes(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


# --------------------------------------------------------------------------- public API


def inspect_image(data: bytes | BinaryIO, *, max_bytes: int, max_pixels: int) -> ImageInfo:
    """Check an upload from its header alone: size, allowed format, pixel count.

    A seekable stream (e.g. werkzeug's spooled upload) is left at position 0. Pixel
    data is not decoded: a file cut short or with a damaged chunk is found from its
    structure (media/completeness.py); damage inside the pixel data only by
    :func:`decode_bgr`.
    """
    with _rewound(data, limit=max_bytes) as stream:
        size = _stream_size(stream)
        _check_bytes(size, max_bytes)
        fmt = _sniff_stream(stream)
        header = _read_header(stream, fmt)
        _check_pixels(header, max_pixels)
        problem = completeness.missing_end(stream, fmt, size)
        if problem:
            raise _invalid(problem)
    width, height = header.oriented_size
    return ImageInfo(
        format=fmt,
        width=width,
        height=height,
        mode=header.mode,
        mime=FORMAT_MIME[fmt],
        extension=FORMAT_EXTENSION[fmt],
        size_bytes=size,
    )


def decode_bgr(data: bytes | BinaryIO, *, max_pixels: int) -> np.ndarray:
    """Decode to a C-contiguous ``HxWx3`` uint8 BGR array, upright per EXIF orientation.

    The pixel count is checked from the header before decoding. Animated or
    multi-page files give their first frame. The array is the caller's to write into.
    """
    bgr = decode_photo(data, max_pixels=max_pixels)[0]
    return bgr if bgr.flags.writeable and bgr.flags.owndata else bgr.copy()


def decode_photo(data: bytes | BinaryIO, *, max_pixels: int) -> tuple[np.ndarray, PhotoMeta]:
    """:func:`decode_bgr` plus what the photo carries (ICC profile, EXIF with its
    orientation reset to 1 since the pixels are upright now, DPI), for its output.

    At its peak this holds the decoder's picture and one 3-byte-per-pixel copy (a 24 MP
    JPEG: about 170 MB); afterwards only the array, which may be read-only (no second
    copy is made to make it writable)."""
    with _rewound(data) as stream:
        if _stream_size(stream) == 0:
            raise ImageError("empty_file", "the file is empty")
        fmt = _sniff_stream(stream)
        header = _read_header(stream, fmt)
        _check_pixels(header, max_pixels)
        if fmt == "heic":
            return _decode_heic(stream)
        bgr, meta, orientation = _decode_pillow(stream, fmt)
    if fmt != "avif":
        orientation = header.orientation
    return np.ascontiguousarray(_ORIENT[orientation](bgr)), meta


def _decode_pillow(stream: BinaryIO, fmt: str) -> tuple[np.ndarray, PhotoMeta, int]:
    """(BGR pixels as stored, metadata, the orientation Pillow reports)."""
    stream.seek(0)
    guard = _EofGuard(stream)
    try:
        im = _PILLOW_OPENERS[fmt](guard)
        _disarm_after_pixels(im, guard)
        im.load()
        if guard.read_past_end:
            raise _invalid("the file is truncated")
        meta = from_pillow(im)
        # AVIF: Pillow turns the container's irot/imir into this tag.
        orientation = _orientation(im, stream) if fmt == "avif" else 1
        bgr = _to_bgr(im)
        im.close()
        return bgr, meta, orientation
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Only reachable when our max_pixels is above Pillow's own ceiling (WebP and
        # TIFF check it internally on top of the check at Image.open that we skip).
        raise ImageError("too_many_pixels", f"the image is too large to decode ({exc})") from exc
    except _DECODE_ERRORS as exc:
        detail = "the file is truncated" if guard.read_past_end else f"{fmt} data is corrupt"
        raise _invalid(detail) from exc


def _bytes(value: object) -> bytes | None:
    return value if isinstance(value, bytes) else None


def _decode_heic(stream: BinaryIO) -> tuple[np.ndarray, PhotoMeta]:
    import pillow_heif  # only where HEIC pixels are needed

    stream.seek(0)
    try:
        # libheif applies the container's crop, rotation and mirror boxes itself.
        heif_file = pillow_heif.open_heif(stream, convert_hdr_to_8bit=True)
        img = heif_file[heif_file.primary_index]
        rgb = np.asarray(img)
        meta = from_raw(icc_profile=_bytes(img.info.get("icc_profile")), exif=_bytes(img.info.get("exif")))
    except (ValueError, RuntimeError, OSError, EOFError, SyntaxError) as exc:
        raise _invalid(f"heic data is corrupt ({exc})") from exc
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise ImageError("unsupported_format", f"HEIC images with {img.mode} pixels are not supported")
    if rgb.shape[2] == 4:
        rgb = _over_white(Image.fromarray(rgb, "RGBA"))
    bgr = np.ascontiguousarray(rgb[..., 2::-1])
    del rgb, img, heif_file
    return bgr, meta


def _disarm_after_pixels(im: ImageFile.ImageFile, guard: _EofGuard) -> None:
    """Stop counting reads past the end once every pixel has been decoded.

    Pillow's ``load_end`` then reads trailing metadata and, by default, accepts it cut
    off (a PNG missing only its IEND chunk decodes; browsers show it too). Matching
    that keeps us exactly as strict as Pillow's default, whatever the global flag says.
    """
    pixels_done = im.load_end

    def load_end() -> None:
        guard.armed = False
        pixels_done()

    im.load_end = load_end  # type: ignore[method-assign]


# --------------------------------------------------------------------------- pixel layouts

_GRAY16_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


def _to_bgr(im: Image.Image) -> np.ndarray:
    """Any decoded Pillow image as an HxWx3 uint8 BGR array (read-only for RGB input:
    a view of the one copy taken out of Pillow)."""
    if im.mode == "RGB" and not im.has_transparency_data:
        # Pillow swaps the channels while copying out: one 3-byte copy, no convert().
        # 48-bit PNGs arrive here too: Pillow keeps each sample's high byte (v >> 8).
        return np.frombuffer(im.tobytes("raw", "BGR"), np.uint8).reshape(im.height, im.width, 3)
    return _to_rgb(im)[..., ::-1]


def _to_rgb(im: Image.Image) -> np.ndarray:
    """Any decoded Pillow image as an HxWx3 uint8 RGB array."""
    if im.mode in _GRAY16_MODES:
        return _gray16_to_rgb(im)
    if im.has_transparency_data:
        return _over_white(im)
    if im.mode == "L":
        return np.repeat(np.asarray(im)[:, :, None], 3, axis=2)
    if im.mode == "RGB":
        return np.asarray(im)
    try:
        # 1-bit, P, CMYK (Pillow already undid Adobe's inverted CMYK while decoding),
        # YCbCr, RGBX, float (clipped to 0..255).
        return np.asarray(im.convert("RGB"))
    except ValueError as exc:  # e.g. LAB or float TIFFs
        raise ImageError("unsupported_format", f"images with {im.mode} pixels are not supported") from exc


def _gray16_to_rgb(im: Image.Image) -> np.ndarray:
    # Pillow's own I;16 -> L conversion clips at 255 (all but the darkest pixels
    # turn white), so scale here. ">> 8" matches what Pillow does for 16-bit RGB
    # PNGs, so gray and colour 16-bit files of the same content agree.
    # 32-bit "I" is taken to hold 16-bit samples, as Pillow's decoders produce.
    values = np.asarray(im).astype(np.int64, copy=False)
    gray = (np.clip(values, 0, 0xFFFF) >> 8).astype(np.uint8)
    transparent = im.info.get("transparency")
    if isinstance(transparent, int):  # tRNS colour key: that one value is see-through
        gray[values == transparent] = 255
    return np.repeat(gray[:, :, None], 3, axis=2)


def _over_white(im: Image.Image) -> np.ndarray:
    # The pipelines need opaque 3-channel pixels. Colour under alpha 0 is undefined
    # (often black or leftovers from editing), so simply dropping alpha shows junk.
    # White is what users see behind transparent images in browsers and documents,
    # and what a JPEG result (which cannot carry alpha) should look like.
    rgba = im.convert("RGBA")
    canvas = Image.new("RGB", rgba.size, (255, 255, 255))
    canvas.paste(rgba, mask=rgba.getchannel("A"))
    return np.asarray(canvas)


# Same transposition per EXIF orientation as PIL.ImageOps.exif_transpose, on the array.
_ORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


# --------------------------------------------------------------------------- encoding


def encode_image(bgr: np.ndarray, fmt: str, *, quality: int = 95, meta: PhotoMeta | None = None) -> bytes:
    """Encode an HxWx3 uint8 BGR array. ``quality`` (1..100) applies to JPEG and WebP.
    The same writers as the strip-at-a-time path (:mod:`services.media.writers`)."""
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown image format {fmt!r}; expected one of {sorted(OUTPUT_FORMATS)}")
    if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3 or 0 in bgr.shape:
        raise ValueError(f"expected a non-empty HxWx3 uint8 array, got {bgr.dtype} {bgr.shape}")
    out = io.BytesIO()
    writer = open_writer(fmt, out, bgr.shape[1], bgr.shape[0], meta, quality=quality)
    writer.write(bgr)
    writer.close()
    return out.getvalue()
