"""WebP: libwebp encodes whole pictures only, so this writer gathers the image and encodes
it at close; the caller bounds WebP outputs (:func:`services.contracts.photo_cost.output_limit`,
with ``WHOLE_IMAGE_BYTES_PER_PIXEL``)."""

from __future__ import annotations

from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from services.media.image_writer import MAX_SIDE, ImageWriter, WriterError
from services.media.metadata import PhotoMeta


class WebpWriter(ImageWriter):
    def __init__(self, fp: BinaryIO, width: int, height: int, meta: PhotoMeta, quality: int = 95) -> None:
        super().__init__(fp, width, height, meta)
        if max(width, height) > MAX_SIDE["webp"]:
            raise WriterError(f"WebP stores at most {MAX_SIDE['webp']} pixels a side, not {width}x{height}")
        self.quality = quality
        self._img: np.ndarray | None = np.empty((height, width, 3), np.uint8)

    def _write(self, rows: np.ndarray) -> None:
        assert self._img is not None, "written after close"
        self._img[self.rows - rows.shape[0] : self.rows] = rows[..., ::-1]

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
