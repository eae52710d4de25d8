"""The background pass a band at a time: super-resolution tiles, or a Lanczos resize.

``RealESRGANer.enhance`` turns the whole photo into one float tensor, runs the network
on it (or on tiles, but into a whole-photo float output), rounds, then resizes the 4x
image down to the asked scale. On a 12 MP photo that is gigabytes. Here each tile is
rounded to 8 bits and resized to the asked scale as soon as it leaves the network, and
a row of tiles (a band of output rows) is handed on before the next row is computed, so
the memory held is one tile's activations plus one band, whatever the photo's size.

The arithmetic is upstream's: the same crops (tile plus ``tile_pad`` of context), the
same reflect padding at the right and bottom edges for networks that need even sides,
the same float32 scaling and rounding, the same Lanczos resize; a resize of a padded
tile equals the whole-image resize inside the pad, so the output matches
``RealESRGANer.enhance`` with the same tile size (tests/unit/test_enhance_tiling.py).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from services.enhance.models import Upsampler

log = logging.getLogger(__name__)

LANCZOS_MARGIN = 8  # input rows of context a Lanczos4 resize band needs (its kernel reaches 4)


@dataclass(frozen=True)
class Network:
    """A super-resolution network as the tiler needs it."""

    module: torch.nn.Module
    scale: int  # native: the network's output is this many times its input
    device: torch.device
    half: bool = False
    mod: int = 1  # input sides must be multiples of this (x2plus unshuffles pixels by 2)
    bytes_per_pixel: float = 1024.0  # peak working memory per input pixel of a tile

    @classmethod
    def of(cls, upsampler: Upsampler, bytes_per_pixel: float) -> Network:
        """From a loaded ``RealESRGANer`` (services.enhance.models.Upsampler)."""
        mod = {2: 2, 1: 4}.get(upsampler.scale, 1)  # RealESRGANer.pre_process's mod_scale
        return cls(upsampler.model, upsampler.scale, upsampler.device, bool(upsampler.half), mod, bytes_per_pixel)


@dataclass(frozen=True)
class Band:
    y: int  # first output row
    pixels: np.ndarray  # (rows, width * upscale, 3) uint8 BGR
    tile: int | None = None  # the tile side it was computed with (None: a resize)


class TileOutOfMemory(Exception):
    """CUDA ran out of memory even with tiles of ``tile_floor``."""

    def __init__(self, tile: int):
        super().__init__(f"out of device memory with {tile}px tiles")
        self.tile = tile


def tile_grid(width: int, height: int, tile: int) -> tuple[int, int]:
    """(tiles across, tiles down): RealESRGANer.tile_process's grid."""
    return math.ceil(width / tile), math.ceil(height / tile)


def tile_cost(tile: int, pad: int, net: Network, out_width: int, upscale: int) -> float:
    """Bytes held while one tile of a band is computed: the network's working memory,
    its 8-bit output at the native scale and resized, and the band it goes into."""
    side = tile + 2 * pad
    native = side * side * net.scale * net.scale * 3
    resized = side * side * upscale * upscale * 3 if upscale != net.scale else 0
    return net.bytes_per_pixel * side * side + native + resized + tile * upscale * out_width * 3


def choose_tile(
    budget_bytes: float, *, pad: int, net: Network, out_width: int, upscale: int, largest: int, smallest: int = 32
) -> int | None:
    """The largest tile side (a multiple of 8) whose cost fits ``budget_bytes``, at most
    ``largest``; None when not even ``smallest`` fits."""
    step = max(8, net.mod)
    t = largest // step * step
    while t >= smallest:
        if tile_cost(t, pad, net, out_width, upscale) <= budget_bytes:
            return t
        t -= step
    return None


def sr_bands(
    img: np.ndarray,
    net: Network,
    *,
    upscale: int,
    tile: int,
    pad: int,
    after_tile: Callable[[int], None] = lambda px: None,
    tile_floor: int | None = None,
) -> Iterator[Band]:
    """Bands of the super-resolved photo at ``upscale``, top to bottom, one tile row each.
    ``after_tile(pixels)`` runs after every tile (progress, cancel) with its input pixel
    count. With ``tile_floor``, CUDA out-of-memory redoes the band with half the tile
    (later bands keep it) down to that floor, then raises :class:`TileOutOfMemory`."""
    h, w = img.shape[:2]
    step = max(8, net.mod)
    if net.mod > 1 and (tile % net.mod or pad % net.mod):
        raise ValueError(f"tile ({tile}) and pad ({pad}) must be multiples of {net.mod} for this network")
    y0 = 0
    while y0 < h:
        try:
            band = _band(img, net, y0, upscale, tile, pad, after_tile)
        except torch.cuda.OutOfMemoryError:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            smaller = tile // 2 // step * step
            if tile_floor is None or smaller < tile_floor:
                raise TileOutOfMemory(tile) from None
            log.warning("GPU out of memory with tile=%d; retrying with tile=%d", tile, smaller)
            tile = smaller
            continue
        yield band
        y0 += band.pixels.shape[0] // upscale


def _band(
    img: np.ndarray, net: Network, y0: int, u: int, tile: int, pad: int, after_tile: Callable[[int], None]
) -> Band:
    h, w = img.shape[:2]
    s = net.scale
    y1 = min(y0 + tile, h)
    band = np.empty(((y1 - y0) * u, w * u, 3), np.uint8)
    for x0 in range(0, w, tile):
        x1 = min(x0 + tile, w)
        px0, py0 = max(x0 - pad, 0), max(y0 - pad, 0)
        px1, py1 = min(x1 + pad, w), min(y1 + pad, h)
        out = forward_tile(img[py0:py1, px0:px1], net)
        if u != s:
            out = cv2.resize(out, ((px1 - px0) * u, (py1 - py0) * u), interpolation=cv2.INTER_LANCZOS4)
        band[:, x0 * u : x1 * u] = out[(y0 - py0) * u : (y1 - py0) * u, (x0 - px0) * u : (x1 - px0) * u]
        del out
        after_tile((x1 - x0) * (y1 - y0))
    return Band(y0 * u, band, tile)


def forward_tile(crop: np.ndarray, net: Network) -> np.ndarray:
    """One crop (HxWx3 uint8 BGR) through the network: (H*scale)x(W*scale)x3 uint8 BGR,
    computed as RealESRGANer does (float32 /255, RGB, reflect-padded to ``mod``, clamp,
    x255, round)."""
    h, w = crop.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(crop[..., ::-1].transpose(2, 0, 1))).unsqueeze(0)
    x = x.to(net.device).float().div_(255.0)
    if net.mod > 1 and (h % net.mod or w % net.mod):
        x = F.pad(x, (0, (-w) % net.mod, 0, (-h) % net.mod), "reflect")
    if net.half:
        x = x.half()
    if net.device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        y = net.module(x)
        del x
        y = y[:, :, : h * net.scale, : w * net.scale].float().clamp_(0, 1).mul_(255.0).round_().to(torch.uint8)
    out = y[0].permute(1, 2, 0).flip(2).cpu().numpy()  # CHW RGB -> HWC BGR
    return np.ascontiguousarray(out)


def resize_bands(
    img: np.ndarray, *, upscale: int, rows: int, after_band: Callable[[int], None] = lambda px: None
) -> Iterator[Band]:
    """``cv2.resize(img, 4x, LANCZOS4)`` in bands of ``rows`` input rows: each band is
    resized with enough rows of context that it equals that slice of the whole resize."""
    h, w = img.shape[:2]
    m, u = LANCZOS_MARGIN, upscale
    for y0 in range(0, h, rows):
        y1 = min(y0 + rows, h)
        c0, c1 = max(y0 - m, 0), min(y1 + m, h)
        out = cv2.resize(img[c0:c1], (w * u, (c1 - c0) * u), interpolation=cv2.INTER_LANCZOS4)
        yield Band(y0 * u, np.ascontiguousarray(out[(y0 - c0) * u : (y1 - c0) * u]))
        after_band(w * (y1 - y0))
