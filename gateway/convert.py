"""``?format=`` conversions of stored images, in the gateway: bounded.

A stored image can be far bigger decoded than stored (a 100 KB flat PNG of 40 MP is
120 MB of pixels), and results reach 100 MP. A conversion is therefore refused past
``max_convert_pixels`` (413 ``too_large_to_convert``: the file as stored is always
there), scaled down for targets that cost more per pixel: measured at 12 MP, decode
plus encode peaked 115 MiB over the process for JPEG, BMP and TIFF, 136 for PNG, 390
for WebP (its encoder converts the whole picture to ARGB and YUV). One process runs one
conversion at a time (others wait up to
``CONVERT_WAIT_SECONDS``, then 503): the gateway's memory holds one photo's pixels, not
one per request. A stored image whose pixels cannot be decoded is 422
``unreadable_image``, not a 500.
"""

from __future__ import annotations

import logging
import threading

from gateway.errors import ApiError
from services.media import images

log = logging.getLogger("kadr.gateway")

CONVERT_WAIT_SECONDS = 10.0
# Peak bytes per pixel of decode + encode, relative to JPEG's (see above).
_COST = {"jpeg": 1.0, "bmp": 1.0, "tiff": 1.0, "png": 1.2, "webp": 3.4}


def pixel_limit(fmt: str, max_pixels: int) -> int:
    return int(max_pixels / _COST.get(fmt, 1.0))


# A threading semaphore: under gevent's monkey-patching it is greenlet-aware.
_one_at_a_time = threading.Semaphore(1)


def convert(data: bytes, fmt: str, *, max_pixels: int) -> bytes:
    """``data`` re-encoded as ``fmt``; ``max_pixels``: the setting, for a JPEG target."""
    max_pixels = pixel_limit(fmt, max_pixels)
    if not _one_at_a_time.acquire(timeout=CONVERT_WAIT_SECONDS):
        raise ApiError(
            503,
            "server_busy",
            "other conversions are running; retry, or download the file as stored",
            headers={"Retry-After": "5"},
        )
    try:
        return images.encode_image(images.decode_bgr(data, max_pixels=max_pixels), fmt)
    except images.ImageError as e:
        if e.code == "too_many_pixels":
            raise ApiError(
                413,
                "too_large_to_convert",
                f"the image is too large to convert to {fmt} here (over {max_pixels:,} pixels, "
                "from KADR_MAX_CONVERT_PIXELS); download it as stored and convert it locally",
                details={"max_pixels": max_pixels},
            )
        log.warning("a stored image could not be converted", extra={"error": e.message})
        raise ApiError(422, "unreadable_image", f"the stored image cannot be converted: {e.message}")
    finally:
        _one_at_a_time.release()
