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
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from services.enhance import parsenet_forward

FACE_SIZE = 512
CHUNK_BYTES = 8 * 1024 * 1024  # float64 pixels blended at a time (the warps' maps add ~2x that)
MASK_BYTES = FACE_SIZE * FACE_SIZE * 8  # one face's float64 soft mask while its bands are pasted
# facexlib's parse label -> mask value: face parts 255, background/neck/cloth/hat 0.
_MASK_COLORMAP = np.array([0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0, 255, 0, 0, 0],
                          dtype=np.float64)


@dataclass
class PreparedFace:
    restored: np.ndarray  # 512x512x3 uint8 BGR
    labels: np.ndarray  # 512x512 uint8 face-parsing classes of the restored face
    inverse_affine: np.ndarray  # 2x3, face square -> output pixels (offset included)
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the output it can touch

    def soft_mask(self) -> np.ndarray:
        """facexlib's parse mask: blurred twice, black border, 0..1 float64 (computed on
        use: 2 MB each, for up to max_faces faces, is not worth keeping)."""
        mask = _MASK_COLORMAP[self.labels]
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
    inv = cv2.invertAffineTransform(affine)
    inv *= upscale
    if upscale > 1:
        inv[:, 2] += 0.5 * upscale
    return inv


def prepare_face(restored: np.ndarray, affine: np.ndarray, upscale: int, out_size: tuple[int, int],
                 face_parse, device) -> PreparedFace:
    """A restored face ready to paste: its parsing labels and the output box it covers."""
    inv = inverse_affine(affine, upscale)
    labels = parse_labels(restored, face_parse, device)
    corners = np.array([[0, 0, 1], [FACE_SIZE, 0, 1], [0, FACE_SIZE, 1], [FACE_SIZE, FACE_SIZE, 1]], np.float64)
    pts = corners @ inv.T
    w, h = out_size
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 2
    box = (max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1)))
    return PreparedFace(restored, labels, inv, box)


def parse_labels(face: np.ndarray, face_parse, device) -> np.ndarray:
    """ParseNet classes of a 512x512 BGR face, computed as facexlib's paste does (input
    scaled to [-1, 1], RGB), with its large layers a strip at a time."""
    x = torch.from_numpy(np.ascontiguousarray(face[:, :, ::-1]).astype(np.float32) / 255.0)
    x = x.permute(2, 0, 1).sub_(0.5).div_(0.5).unsqueeze(0).to(device)
    return parsenet_forward.labels(face_parse, x)


def paste_band(band: np.ndarray, band_y: int, faces: list[PreparedFace]) -> None:
    """Blend ``faces`` (in order) into ``band`` (output rows from ``band_y``), in place."""
    rows = band.shape[0]
    touching = [f for f in faces if f.box[1] < band_y + rows and f.box[3] > band_y and f.box[2] > f.box[0]]
    if not touching:
        return
    c0 = min(f.box[0] for f in touching)
    c1 = max(f.box[2] for f in touching)
    chunk = max(1, CHUNK_BYTES // ((c1 - c0) * 3 * 8))
    masks = {id(f): f.soft_mask() for f in touching}
    for r0 in range(0, rows, chunk):
        r1 = min(r0 + chunk, rows)
        y0, y1 = band_y + r0, band_y + r1
        here = [f for f in touching if f.box[1] < y1 and f.box[3] > y0]
        if not here:
            continue
        region = band[r0:r1, c0:c1].astype(np.float64)
        for f in here:
            fx0, fx1 = f.box[0], f.box[2]
            fy0, fy1 = max(f.box[1], y0), min(f.box[3], y1)
            if fy1 <= fy0:
                continue
            face = warp_window(f.restored, f.inverse_affine, fx0, fy0, fx1 - fx0, fy1 - fy0)
            mask = warp_window(masks[id(f)], f.inverse_affine, fx0, fy0, fx1 - fx0, fy1 - fy0)[:, :, None]
            win = region[fy0 - y0:fy1 - y0, fx0 - c0:fx1 - c0]
            win[...] = mask * face + (1 - mask) * win
        band[r0:r1, c0:c1] = region.astype(np.uint8)


def warp_window(src: np.ndarray, matrix: np.ndarray, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """``cv2.warpAffine(src, matrix, size)[y0:y0+h, x0:x0+w]`` (bilinear, black border)
    without the rest of the canvas: the source coordinates of each window pixel are
    computed as warpAffine computes them (its inverted matrix, its 1/1024 fixed point and
    its rounding, in global pixel coordinates) and handed to ``cv2.remap`` in the
    fixed-point form warpAffine itself passes on, so every pixel comes out the same."""
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
    x = ((np.rint((m[1] * ys + m[2]) * ab_scale).astype(np.int64)[:, None] + round_delta
          + np.rint(m[0] * xs * ab_scale).astype(np.int64)[None, :]) >> 5).clip(-2**31, 2**31 - 1).astype(np.int32)
    y = ((np.rint((m[4] * ys + m[5]) * ab_scale).astype(np.int64)[:, None] + round_delta
          + np.rint(m[3] * xs * ab_scale).astype(np.int64)[None, :]) >> 5).clip(-2**31, 2**31 - 1).astype(np.int32)
    frac = ((y & 31) * 32 + (x & 31)).astype(np.uint16)  # INTER_BITS = 5: 32x32 interpolation table
    xy = np.empty(x.shape + (2,), np.int16)
    np.clip(x >> 5, -32768, 32767, out=x)
    np.clip(y >> 5, -32768, 32767, out=y)
    xy[..., 0], xy[..., 1] = x, y
    del x, y
    return cv2.remap(src, xy, frac, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
