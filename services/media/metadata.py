"""What a photo carries besides pixels, taken from the input to the output.

A restored photo that loses its colour profile shifts colour in every colour-managed
viewer (phones shoot Display P3); one that loses EXIF loses when and where it was taken,
which is how photo libraries sort it. Orientation is the exception: the pixels are turned
upright while decoding, so the tag is reset to 1 or viewers would turn them again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from PIL import ExifTags, Image

log = logging.getLogger(__name__)

_ORIENTATION = ExifTags.Base.Orientation
_PIXEL_X = ExifTags.Base.ExifImageWidth  # PixelXDimension in the Exif IFD
_PIXEL_Y = ExifTags.Base.ExifImageHeight
_MAKER_NOTE = ExifTags.Base.MakerNote
JPEG_MAX_EXIF = 65_533  # one APP1 segment, "Exif\0\0" included
_DPI_RANGE = (1.0, 100_000.0)


@dataclass(frozen=True)
class PhotoMeta:
    icc_profile: bytes | None = None
    exif: bytes | None = None  # "Exif\0\0" + TIFF structure, orientation already 1
    dpi: tuple[float, float] | None = None

    def exif_for(self, width: int, height: int, *, max_bytes: int | None = None) -> bytes | None:
        """The EXIF block for an output of ``width`` x ``height``: the image-size tags say
        the new size; past ``max_bytes`` the maker note goes first, then the whole block."""
        if not self.exif:
            return None
        exif = _load(self.exif)
        if exif is None:
            return None
        sub = exif.get_ifd(ExifTags.IFD.Exif)
        if _PIXEL_X in sub:
            sub[_PIXEL_X] = width
        if _PIXEL_Y in sub:
            sub[_PIXEL_Y] = height
        data = _dump(exif)
        if data is not None and max_bytes is not None and len(data) > max_bytes and _MAKER_NOTE in sub:
            del sub[_MAKER_NOTE]
            data = _dump(exif)
            log.info("EXIF maker note dropped: the block would not fit the output format")
        if data is not None and max_bytes is not None and len(data) > max_bytes:
            log.warning("EXIF dropped: %d bytes, the output format holds %d", len(data), max_bytes)
            return None
        return data


def from_pillow(im: Image.Image) -> PhotoMeta:
    """Metadata of an opened (not necessarily decoded) Pillow image."""
    icc = im.info.get("icc_profile") or None
    try:
        # A copy: the image's own Exif object is cached, and callers still read its orientation.
        exif = _load(im.getexif().tobytes())
    except Exception:  # noqa: BLE001 - damaged EXIF must not cost the photo
        exif = None
    return PhotoMeta(
        icc_profile=icc if isinstance(icc, bytes) else None, exif=_normalised(exif), dpi=_dpi(im.info.get("dpi"))
    )


def from_raw(*, icc_profile: bytes | None, exif: bytes | None) -> PhotoMeta:
    """Metadata handed over as bytes (HEIF: libheif reads the boxes, not Pillow)."""
    return PhotoMeta(icc_profile=icc_profile or None, exif=_normalised(_load(exif)) if exif else None)


def _load(data: bytes | None) -> Image.Exif | None:
    if not data:
        return None
    exif = Image.Exif()
    try:
        exif.load(data if data.startswith(b"Exif\x00\x00") else b"Exif\x00\x00" + data)
    except Exception:  # noqa: BLE001
        return None
    return exif


def _normalised(exif: Image.Exif | None) -> bytes | None:
    if exif is None:
        return None
    try:
        has_sub = bool(exif.get_ifd(ExifTags.IFD.Exif)) or bool(exif.get_ifd(ExifTags.IFD.GPSInfo))
    except Exception:  # noqa: BLE001
        has_sub = False
    if not len(exif) and not has_sub:
        return None
    if exif.get(_ORIENTATION, 1) != 1:
        exif[_ORIENTATION] = 1
    return _dump(exif)


def _dump(exif: Image.Exif) -> bytes | None:
    try:
        return exif.tobytes()
    except Exception as e:  # noqa: BLE001 - a tag Pillow cannot write back
        log.warning("EXIF not carried over: %s", e)
        return None


def _dpi(value: Any) -> tuple[float, float] | None:
    try:
        x, y = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    lo, hi = _DPI_RANGE
    if not (lo <= x <= hi and lo <= y <= hi):
        return None
    return (x, y)
