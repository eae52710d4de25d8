"""Restored faces pasted back into the upscaled photo, one band of rows at a time.

facexlib's ``paste_faces_to_input_image`` warps every face and its mask onto a canvas
the size of the whole output and blends in float64: for a 96 MP output that is 2.3 GB
per face. The blend is per pixel, so it is done here window by window: a face touches
only the rows and columns its warped square covers, and only the part of that inside
the current band is computed, in chunks of bounded size. The formula is facexlib's
(GFPGAN v1.4 uses the parsing mask): the same inverse affine with its half-pixel
offset, the same blurred parse mask, the same warp (see :func:`warp_window`), faces
blended in order over float64 pixels that are truncated to 8 bits at the end. The
output is facexlib's to the bit (tests/unit/test_enhance_pipeline.py).

Where facexlib's mask is exactly 0 its blend returns the pixel unchanged, so a face's
window is cut to where its mask can be non-zero; the blend runs in place (no
temporaries the size of the window) and chunks of rows are blended on as many threads
as the process computes with (NumPy and OpenCV release the GIL): a face a third of a
24 MP photo wide costs ~0.6 s rather than ~3 s (bench/real_photos.py measures it).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from services.enhance import parsenet_forward

if TYPE_CHECKING:
    from facexlib.parsing.parsenet import ParseNet  # untyped: Any to mypy

FACE_SIZE = 512
CHUNK_BYTES = 4 * 1024 * 1024  # float64 pixels blended at a time per thread (the warps' maps add ~2x that)
MASK_BYTES = FACE_SIZE * FACE_SIZE * 8  # one face's float64 soft mask while its bands are pasted
BORDER = 10  # facexlib zeroes this many mask pixels along each side of the face square
BLUR_REACH = 2 * 50  # two 101x101 blurs: how far the mask reaches past the parsed face parts
# facexlib's parse label -> mask value: face parts 255, background/neck/cloth/hat 0.
_MASK_COLORMAP = np.array(
    [0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0, 255, 0, 0, 0], dtype=np.float64
)


@dataclass
class PreparedFace:
    restored: np.ndarray  # 512x512x3 uint8 BGR
    labels: np.ndarray  # 512x512 uint8 face-parsing classes of the restored face
    inverse_affine: np.ndarray  # 2x3, face square -> output pixels (offset included)
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the output its mask can be non-zero
    mask: np.ndarray | None = field(default=None, repr=False)  # soft_mask() while the face's bands are pasted

    def soft_mask(self) -> np.ndarray:
        """facexlib's parse mask: blurred twice, black border, 0..1 float64 (computed on
        use: 2 MB each, for up to max_faces faces, is not worth keeping)."""
        mask: np.ndarray = _MASK_COLORMAP[self.labels]
        mask = cv2.GaussianBlur(mask, (101, 101), 11)
        mask = cv2.GaussianBlur(mask, (101, 101), 11)
        thres = 10
        mask[:thres, :] = 0
        mask[-thres:, :] = 0
        mask[:, :thres] = 0
        mask[:, -thres:] = 0
        return mask / 255.0


def inverse_affine(affine: np.ndarray, upscale: int) -> np.ndarray:
    """facexlib's get_inverse_affine, then the 0.5*upscale offset its paste adds."""
    inv: np.ndarray = cv2.invertAffineTransform(affine)  # float64; cv2's stubs say integer | floating
    inv *= upscale
    if upscale > 1:
        inv[:, 2] += 0.5 * upscale
    return inv


def prepare_face(
    restored: np.ndarray,
    affine: np.ndarray,
    upscale: int,
    out_size: tuple[int, int],
    face_parse: ParseNet,
    device: torch.device,
) -> PreparedFace:
    """A restored face ready to paste: its parsing labels and the output box its mask can
    touch."""
    inv = inverse_affine(affine, upscale)
    labels = parse_labels(restored, face_parse, device)
    sx0, sy0, sx1, sy1 = mask_support(labels)
    if sx1 <= sx0 or sy1 <= sy0:  # nothing parsed as face: facexlib's blend changes no pixel
        return PreparedFace(restored, labels, inv, (0, 0, 0, 0))
    # Bilinear sampling reads one source pixel either side; the warp's 1/32 px fixed point
    # and the rounding to whole output pixels are covered by the 2 px margin below.
    corners = np.array(
        [[sx0 - 1, sy0 - 1, 1], [sx1 + 1, sy0 - 1, 1], [sx0 - 1, sy1 + 1, 1], [sx1 + 1, sy1 + 1, 1]], np.float64
    )
    pts = corners @ inv.T
    w, h = out_size
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 2
    box = (max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1)))
    return PreparedFace(restored, labels, inv, box)


def mask_support(labels: np.ndarray) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 (face-square pixels, end exclusive) outside which facexlib's soft
    mask is exactly 0: the face parts' bounding box grown by the blurs' reach, inside the
    zeroed border. A superset of the true support, which is all exactness needs."""
    parts = _MASK_COLORMAP[labels] > 0
    rows, cols = np.flatnonzero(parts.any(axis=1)), np.flatnonzero(parts.any(axis=0))
    if rows.size == 0:
        return 0, 0, 0, 0
    lo, hi = BORDER, FACE_SIZE - BORDER
    return (
        max(lo, int(cols[0]) - BLUR_REACH),
        max(lo, int(rows[0]) - BLUR_REACH),
        min(hi, int(cols[-1]) + 1 + BLUR_REACH),
        min(hi, int(rows[-1]) + 1 + BLUR_REACH),
    )


def parse_labels(face: np.ndarray, face_parse: ParseNet, device: torch.device) -> np.ndarray:
    """ParseNet classes of a 512x512 BGR face, computed as facexlib's paste does (input
    scaled to [-1, 1], RGB), with its large layers a strip at a time."""
    x = torch.from_numpy(np.ascontiguousarray(face[:, :, ::-1]).astype(np.float32) / 255.0)
    x = x.permute(2, 0, 1).sub_(0.5).div_(0.5).unsqueeze(0).to(device)
    return parsenet_forward.labels(face_parse, x)


def paste_band(band: np.ndarray, band_y: int, faces: list[PreparedFace], *, threads: int | None = None) -> None:
    """Blend ``faces`` (in order) into ``band`` (output rows from ``band_y``), in place.
    Bands come top to bottom: a face's soft mask is made at its first band and dropped
    after its last (MASK_BYTES each, only for the faces the current band touches)."""
    rows = band.shape[0]
    end = band_y + rows
    touching = [f for f in faces if f.box[1] < end and f.box[3] > band_y and f.box[2] > f.box[0]]
    if not touching:
        return
    for f in touching:
        if f.mask is None:
            f.mask = f.soft_mask()
    c0 = min(f.box[0] for f in touching)
    c1 = max(f.box[2] for f in touching)
    chunk = max(1, CHUNK_BYTES // ((c1 - c0) * 3 * 8))
    starts = list(range(0, rows, chunk))
    n = min(len(starts), threads or max(1, cv2.getNumThreads()))

    def blend(r0: int) -> None:
        _blend_rows(band, band_y, r0, min(r0 + chunk, rows), c0, c1, touching)

    if n <= 1:
        for r0 in starts:
            blend(r0)
    else:
        with ThreadPoolExecutor(n, thread_name_prefix="paste") as pool:
            list(pool.map(blend, starts))
    for f in touching:
        if f.box[3] <= end:
            f.mask = None


def _blend_rows(band: np.ndarray, band_y: int, r0: int, r1: int, c0: int, c1: int, faces: list[PreparedFace]) -> None:
    """facexlib's ``mask * face + (1 - mask) * pixels`` for band rows r0..r1, face after
    face, over float64 pixels truncated to uint8 at the end; the same operations in the
    same order, written into preallocated arrays."""
    y0, y1 = band_y + r0, band_y + r1
    here = [f for f in faces if f.box[1] < y1 and f.box[3] > y0]
    if not here:
        return
    region = band[r0:r1, c0:c1].astype(np.float64)
    for f in here:
        fx0, fx1 = f.box[0], f.box[2]
        fy0, fy1 = max(f.box[1], y0), min(f.box[3], y1)
        maps = warp_maps(f.inverse_affine, fx0, fy0, fx1 - fx0, fy1 - fy0)
        face = _remap(f.restored, maps)
        assert f.mask is not None  # paste_band made it before blending
        mask = _remap(f.mask, maps)[:, :, None]
        del maps
        win = region[fy0 - y0 : fy1 - y0, fx0 - c0 : fx1 - c0]
        front = np.multiply(mask, face)
        del face
        np.subtract(1, mask, out=mask)
        np.multiply(mask, win, out=win)
        np.add(front, win, out=win)
        del front, mask
    np.copyto(band[r0:r1, c0:c1], region, casting="unsafe")


def warp_window(src: np.ndarray, matrix: np.ndarray, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """``cv2.warpAffine(src, matrix, size)[y0:y0+h, x0:x0+w]`` (bilinear, black border)
    without the rest of the canvas (see :func:`warp_maps`)."""
    return _remap(src, warp_maps(matrix, x0, y0, w, h))


def warp_maps(matrix: np.ndarray, x0: int, y0: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """The source coordinates of a window's pixels as warpAffine computes them (its
    inverted matrix, its 1/1024 fixed point and its rounding, in global pixel
    coordinates), in the fixed-point form warpAffine itself hands to ``cv2.remap``, so
    every pixel comes out the same. One face's image and mask share them."""
    m = np.asarray(matrix, np.float64).ravel().copy()
    d = m[0] * m[4] - m[1] * m[3]
    d = 1.0 / d if d != 0 else 0.0
    m[0], m[1], m[3], m[4] = m[4] * d, -m[1] * d, -m[3] * d, m[0] * d
    m[2], m[5] = -m[0] * m[2] - m[1] * m[5], -m[3] * m[2] - m[4] * m[5]
    xs = np.arange(x0, x0 + w, dtype=np.float64)
    ys = np.arange(y0, y0 + h, dtype=np.float64)
    ab_scale, round_delta = 1 << 10, 1 << 4  # AB_BITS = 10; AB_SCALE / INTER_TAB_SIZE / 2
    # int64 sums (warpAffine's are int, saturated: the clip below stands for that), then
    # int32 for the per-pixel maps: a window's coordinates in 1/32 px fit easily.
    x = (
        (
            (
                np.rint((m[1] * ys + m[2]) * ab_scale).astype(np.int64)[:, None]
                + round_delta
                + np.rint(m[0] * xs * ab_scale).astype(np.int64)[None, :]
            )
            >> 5
        )
        .clip(-(2**31), 2**31 - 1)
        .astype(np.int32)
    )
    y = (
        (
            (
                np.rint((m[4] * ys + m[5]) * ab_scale).astype(np.int64)[:, None]
                + round_delta
                + np.rint(m[3] * xs * ab_scale).astype(np.int64)[None, :]
            )
            >> 5
        )
        .clip(-(2**31), 2**31 - 1)
        .astype(np.int32)
    )
    frac = ((y & 31) * 32 + (x & 31)).astype(np.uint16)  # INTER_BITS = 5: 32x32 interpolation table
    xy = np.empty(x.shape + (2,), np.int16)
    np.clip(x >> 5, -32768, 32767, out=x)
    np.clip(y >> 5, -32768, 32767, out=y)
    xy[..., 0], xy[..., 1] = x, y
    del x, y
    return xy, frac


def _remap(src: np.ndarray, maps: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return cv2.remap(src, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
