"""Face restoration + background super-resolution of one photo. Pure: arrays in, bands out.

This follows ``GFPGANer.enhance`` (gfpgan 1.3.8) step by step, with the changes a
service needs:

- **memory set by a budget, not by the photo**: faces are found on a copy no larger
  than the budget allows (boxes mapped back), the background is computed in tiles whose
  size comes from the budget (and, on CUDA, from free device memory), and each band of
  output rows is pasted into and handed to ``sink`` (the encoder) before the next is made;
- the upscale is chosen per call, the number of faces is bounded (the detector can
  return thousands of boxes on a noisy image), one face failing does not fail the photo,
  the fast path skips the super-resolution network, and CUDA out-of-memory in a tile is
  retried with smaller tiles;
- ``tick(fraction)`` after every face and tile: progress, and the caller's chance to
  stop a canceled job (it raises; nothing more is computed).

The restorer (services.enhance.models.Restorer) is stateful through its
``face_helper``; callers must not share one between threads.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from services.contracts.schemas import EnhanceParams as EnhanceOptions  # one definition of the ranges
from services.enhance import paste, tiling

if TYPE_CHECKING:
    from facexlib.utils.face_restoration_helper import FaceRestoreHelper  # untyped: Any to mypy

    from services.enhance.models import Restorer

log = logging.getLogger(__name__)

FACE_SIZE = 512  # GFPGAN v1.4 input/output size
EYE_DIST_THRESHOLD = 5  # px; GFPGANer's bound below which a detection is a side face or noise
DETECT_CONFIDENCE = 0.97  # what facexlib's get_face_landmarks_5 asks of RetinaFace


@dataclass(frozen=True)
class Limits:
    """How much one photo may take of the process (worker settings, measured model costs)."""

    budget_bytes: int = 400 * 2**20  # working memory over the idle process, pixels included
    tile_pad: int = 10
    max_tile: int = 256  # largest background tile
    tile_floor: int = 64  # CUDA out-of-memory halves the tile down to this
    detect_max_pixels: int = 2_000_000  # the detector's copy of the photo, at most
    # RetinaFace ResNet-50: 382 B/px at 1.04 MP, as the process sees it (237 live)
    detect_bytes_per_pixel: float = 400.0
    face_bytes: int = 3 * 2**20  # one restored face kept for its paste (face, labels) and its mask in use
    reserve_bytes: int = 64 * 2**20  # paste chunks and their warp maps, the encoder's strip
    device_budget_bytes: int | None = None  # CUDA: working memory on the device (None: CPU)


@dataclass(frozen=True)
class Costs:
    """Relative cost of the units of work, for progress (seconds, roughly)."""

    face: float = 3.5
    background_per_mp: float = 12.0  # per megapixel of input the background pass reads


@dataclass
class EnhanceResult:
    width: int
    height: int
    faces_found: int  # detections that passed the eye-distance filter, before max_faces
    faces_restored: int
    faces_failed: int  # restoration raised or produced non-finite output; original face kept
    tile_used: int | None  # smallest background tile used; None: no network (Lanczos)
    detect_scale: float = 1.0  # the detector's copy relative to the photo
    timings: dict[str, float] = field(default_factory=dict)  # seconds: detect, restore, background, paste
    image: np.ndarray | None = None  # only from enhance(), which gathers the bands

    @property
    def faces_skipped(self) -> int:
        """Faces found but left untouched because of max_faces / only_center_face."""
        return self.faces_found - self.faces_restored - self.faces_failed


class EnhanceError(Exception):
    """A photo could not be enhanced; ``code`` is the API error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


Sink = Callable[[tiling.Band], None]


def enhance(
    img_bgr: np.ndarray,
    restorer: Restorer,
    net: tiling.Network | None,
    opts: EnhanceOptions,
    *,
    limits: Limits = Limits(),
    costs: Costs = Costs(),
    tick: Callable[[float], None] = lambda f: None,
) -> EnhanceResult:
    """:func:`run` gathered into one image (tests, benchmarks, small photos)."""
    parts: list[tiling.Band] = []
    result = run(img_bgr, restorer, net, opts, limits=limits, costs=costs, sink=parts.append, tick=tick)
    result.image = np.concatenate([b.pixels for b in parts]) if len(parts) > 1 else parts[0].pixels
    return result


def output_size(width: int, height: int, opts: EnhanceOptions) -> tuple[int, int]:
    if opts.has_aligned:
        return FACE_SIZE, FACE_SIZE
    return width * opts.upscale, height * opts.upscale


def run(
    source: np.ndarray | Callable[[], np.ndarray],
    restorer: Restorer,
    net: tiling.Network | None,
    opts: EnhanceOptions,
    *,
    limits: Limits,
    costs: Costs,
    sink: Sink,
    tick: Callable[[float], None],
    release: Callable[[str], None] = lambda phase: None,
) -> EnhanceResult:
    """``source``: the photo, or a callable that gives it (again): then the photo is let
    go while the faces are restored (GFPGAN's working memory is the largest single cost
    and a 24 MP photo is 72 MB more) and taken again for the background pass; the caller
    must hold no other reference to it. ``release(phase)`` runs as a phase of face work
    ends ("detect", then "faces", both whenever ``max_faces`` > 0; the background is the
    caller's to close): the caller hands freed memory back to the system there, so one
    phase's leftovers do not stack on the next one's peak. (After every face too was
    measured: no lower peak, the peak is inside one face's forward.)"""
    img: np.ndarray | None  # let go while the faces are restored, and for a prescaled background
    img = _as_bgr(source() if callable(source) else source)
    if opts.quality != "fast" and not opts.has_aligned and net is None:
        # Refused before the face work, which would otherwise be thrown away.
        raise EnhanceError(
            "upsampler_unavailable", f"quality {opts.quality!r} needs a background upsampler and none is loaded"
        )
    helper = restorer.face_helper
    timings = {"detect": 0.0, "restore": 0.0, "background": 0.0, "paste": 0.0}
    helper.clean_all()
    h, w = img.shape[:2]
    try:
        if opts.has_aligned:
            face = cv2.resize(img, (FACE_SIZE, FACE_SIZE))
            t0 = time.perf_counter()
            restored, ok = _restore_face(restorer, face, opts.weight)
            timings["restore"] = time.perf_counter() - t0
            sink(tiling.Band(0, restored))
            tick(1.0)
            return EnhanceResult(FACE_SIZE, FACE_SIZE, 1, int(ok), int(not ok), None, 1.0, timings)

        u = opts.upscale
        out_w, out_h = w * u, h * u
        background_cost = costs.background_per_mp * (w * h) / 1e6 if opts.quality != "fast" else 0.05
        progress = _Progress(tick, background_cost)

        t0 = time.perf_counter()
        faces_found, detect_scale = 0, 1.0
        if opts.max_faces > 0:  # 0: background only (landscapes, scans): no detector pass at all
            helper.input_img = img  # align_warp_face crops from the full-resolution photo
            detect_scale = _detect_faces(helper, img, opts, limits)
            faces_found = _select_faces(helper, opts)
            helper.align_warp_face()
        timings["detect"] = time.perf_counter() - t0
        progress.add_faces(len(helper.cropped_faces), costs.face)
        shape = img.shape
        if callable(source) and helper.cropped_faces:
            helper.input_img = img = None
        if opts.max_faces > 0:
            release("detect")

        t0 = time.perf_counter()
        restored_n = failed_n = 0
        prepared: list[paste.PreparedFace] = []
        for cropped, affine in zip(helper.cropped_faces, helper.affine_matrices):
            restored, ok = _restore_face(restorer, cropped, opts.weight)
            restored_n += ok
            failed_n += not ok
            prepared.append(paste.prepare_face(restored, affine, u, (out_w, out_h), helper.face_parse, restorer.device))
            progress.face_done()
        helper.clean_all()  # the crops are no longer needed; the prepared faces carry the rest
        if opts.max_faces > 0:
            release("faces")
        timings["restore"] = time.perf_counter() - t0
        if img is None:
            assert callable(source)  # only a photo that can be read again is let go
            t0 = time.perf_counter()
            img = _as_bgr(source())
            if img.shape != shape:
                raise EnhanceError("invalid_image", "the photo read differently the second time")
            timings["reload"] = time.perf_counter() - t0

        held = img.nbytes + len(prepared) * limits.face_bytes + limits.reserve_bytes
        tile_used = None
        if opts.quality == "fast":
            rows = max(8, int((limits.budget_bytes - held) // max(1, (w * 3 * (1 + 2 * u * u)))))
            progress.set_pixels(w * h)
            bands = tiling.resize_bands(img, upscale=u, rows=min(rows, 1024), after_band=progress.pixels_done)
        else:
            assert net is not None  # refused above when missing
            src, net_upscale = img, u
            if opts.prescale and net.scale > u:
                src, net_upscale = _prescaled(img, u, net.scale), net.scale
                img = None  # the shrunk copy is all the background pass reads
            tile = _plan_tile(net, limits, opts, src.shape[1], src.shape[0], net_upscale, held)
            progress.set_pixels(src.shape[0] * src.shape[1])
            floor = limits.tile_floor if limits.device_budget_bytes is not None else None  # CUDA only
            bands = tiling.sr_bands(
                src,
                net,
                upscale=net_upscale,
                tile=tile,
                pad=limits.tile_pad,
                after_tile=progress.pixels_done,
                tile_floor=floor,
            )
            if src is not img:
                bands = _cropped(bands, out_w, out_h)
        t_bg = time.perf_counter()
        try:
            for band in bands:
                t1 = time.perf_counter()
                timings["background"] += t1 - t_bg
                if band.tile is not None:
                    tile_used = band.tile if tile_used is None else min(tile_used, band.tile)
                if prepared:
                    paste.paste_band(band.pixels, band.y, prepared, threads=torch.get_num_threads())
                timings["paste"] += time.perf_counter() - t1
                sink(band)
                t_bg = time.perf_counter()
        except tiling.TileOutOfMemory as e:
            raise EnhanceError(
                "gpu_out_of_memory",
                f"the GPU ran out of memory upscaling a {w}x{h} image even with {e.tile}px tiles; "
                "try a smaller image or a lower upscale",
            ) from None
        return EnhanceResult(out_w, out_h, faces_found, restored_n, failed_n, tile_used, detect_scale, timings)
    finally:
        # The helper outlives this call (it is part of the loaded model); leftovers
        # from a failed photo must not be pasted into the next one.
        helper.clean_all()


class _Progress:
    """Work done as a fraction: faces weigh ``face`` seconds each, the background its
    estimated seconds, spread over its input pixels."""

    def __init__(self, tick: Callable[[float], None], background: float):
        self.tick, self.background = tick, background
        self.faces_total, self.face_cost, self.faces = 0, 0.0, 0
        self.pixels, self.total_pixels = 0, 0
        self.last = 0.0

    def add_faces(self, n: int, cost: float) -> None:
        self.faces_total, self.face_cost = n, cost

    def set_pixels(self, total: int) -> None:
        self.total_pixels = total

    def _report(self) -> None:
        total = self.faces_total * self.face_cost + self.background
        done = self.faces * self.face_cost
        if self.total_pixels:
            done += self.background * min(1.0, self.pixels / self.total_pixels)
        # Never backwards: a band redone with smaller tiles counts its pixels again.
        self.last = max(self.last, min(1.0, done / total) if total > 0 else 1.0)
        self.tick(self.last)

    def face_done(self) -> None:
        self.faces += 1
        self._report()

    def pixels_done(self, n: int) -> None:
        self.pixels += n
        self._report()


def _as_bgr(img: np.ndarray) -> np.ndarray:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        raise EnhanceError("invalid_image", "expected an 8-bit image array")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.ndim != 3 or img.shape[2] != 3:
        raise EnhanceError("invalid_image", f"expected a BGR image of shape HxWx3, got {img.shape}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise EnhanceError("invalid_image", "the image is empty")
    return img


def detection_scale(width: int, height: int, img_bytes: int, limits: Limits) -> float:
    """The detector's copy relative to the photo: as large as the budget left after the
    photo allows, at most ``detect_max_pixels``, never larger than the photo."""
    room = limits.budget_bytes - img_bytes - limits.reserve_bytes
    pixels = min(limits.detect_max_pixels, max(room, 0) / limits.detect_bytes_per_pixel)
    pixels = max(pixels, 256 * 256)  # below this the detector finds nothing worth restoring
    return min(1.0, math.sqrt(pixels / (width * height)))


def _detect_faces(helper: FaceRestoreHelper, img: np.ndarray, opts: EnhanceOptions, limits: Limits) -> float:
    """RetinaFace on a copy of at most the budget's size; boxes and landmarks in the
    photo's pixels land in helper's lists as ``get_face_landmarks_5`` leaves them.
    Returns the copy's scale."""
    h, w = img.shape[:2]
    s = detection_scale(w, h, img.nbytes, limits)
    if s < 1.0:
        sw, sh = max(1, round(w * s)), max(1, round(h * s))
        small = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)
        sx, sy = w / sw, h / sh
    else:
        small, sx, sy = img, 1.0, 1.0
    with torch.inference_mode():
        boxes = helper.face_det.detect_faces(small, DETECT_CONFIDENCE)
    del small
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 15)
    boxes[:, [0, 2, 5, 7, 9, 11, 13]] *= sx  # x: box corners and the five landmarks
    boxes[:, [1, 3, 6, 8, 10, 12, 14]] *= sy
    for b in boxes:
        # too small an eye distance: a side face or noise (get_face_landmarks_5's filter)
        if np.linalg.norm([b[5] - b[7], b[6] - b[8]]) < EYE_DIST_THRESHOLD:
            continue
        helper.all_landmarks_5.append(b[5:15].reshape(5, 2))
        helper.det_faces.append(b[0:5])
    return s


def _select_faces(helper: FaceRestoreHelper, opts: EnhanceOptions) -> int:
    """Leave only the faces to restore in helper's lists; return how many were found.

    facexlib's own ``only_center_face`` turns ``det_faces`` into a bare array, and it
    has no count bound, so the selection is done here on its unfiltered output.
    """
    # Non-finite boxes come from a confused detector; they are not faces.
    valid = [
        i
        for i, (box, lm) in enumerate(zip(helper.det_faces, helper.all_landmarks_5))
        if np.isfinite(box).all() and np.isfinite(lm).all()
    ]
    found = len(valid)
    keep: list[int] = []
    if found:
        boxes = np.asarray([helper.det_faces[i][:4] for i in valid], dtype=np.float64)
        h, w = helper.input_img.shape[:2]
        if opts.only_center_face:
            centers = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
            rank = np.argsort(np.linalg.norm(centers - [w / 2, h / 2], axis=1), kind="stable")
            limit = 1
        else:
            # Area inside the frame, as facexlib's get_largest_face measures it: boxes
            # from a confused detector can reach far outside the image.
            x = np.clip(boxes[:, [0, 2]], 0, w)
            y = np.clip(boxes[:, [1, 3]], 0, h)
            rank = np.argsort(-(x[:, 1] - x[:, 0]) * (y[:, 1] - y[:, 0]), kind="stable")
            limit = opts.max_faces
        for r in rank:
            i = valid[r]
            # align_warp_face cannot handle degenerate landmarks (no affine fit): skip
            # them here rather than lose the whole photo there.
            if (
                cv2.estimateAffinePartial2D(helper.all_landmarks_5[i], helper.face_template, method=cv2.LMEDS)[0]
                is None
            ):
                continue
            keep.append(i)
            if len(keep) == limit:
                break
    helper.det_faces = [helper.det_faces[i] for i in keep]
    helper.all_landmarks_5 = [helper.all_landmarks_5[i] for i in keep]
    if found > len(keep):
        log.info(
            "restoring %d of %d detected faces (max_faces=%d, only_center_face=%s)",
            len(keep),
            found,
            opts.max_faces,
            opts.only_center_face,
        )
    return found


def _restore_face(restorer: Restorer, face: np.ndarray, weight: float) -> tuple[np.ndarray, bool]:
    """Restore one aligned 512x512 BGR face; on any failure return the input face unchanged."""
    rgb = np.ascontiguousarray(face[:, :, ::-1], dtype=np.float32) / 255.0
    x = torch.from_numpy(rgb.transpose(2, 0, 1)).unsqueeze(0)
    x = ((x - 0.5) / 0.5).to(restorer.device)  # GFPGAN expects [-1, 1]
    try:
        with torch.inference_mode():
            out = restorer.gfpgan(x, return_rgb=False, weight=weight)[0]
            out = out.squeeze(0).float().cpu()
            if not torch.isfinite(out).all():
                raise FloatingPointError("restoration produced non-finite values")
            out = ((out.clamp_(-1, 1) + 1) / 2).numpy().transpose(1, 2, 0)[:, :, ::-1]
        return np.ascontiguousarray((out * 255.0).round().astype(np.uint8)), True
    except Exception as exc:  # one bad face must not cost the whole photo
        if isinstance(exc, torch.cuda.OutOfMemoryError):
            _free_cuda_cache()
        log.warning("face restoration failed, keeping the original face: %s: %s", type(exc).__name__, exc)
        return face, False


def _plan_tile(
    net: tiling.Network, limits: Limits, opts: EnhanceOptions, width: int, height: int, upscale: int, held: int
) -> int:
    """The background tile for this photo: the largest the budget (and on CUDA the free
    device memory) allows, at most ``max_tile`` and the ``tile`` option."""
    largest = min(limits.max_tile, opts.tile or limits.max_tile)
    host = limits.budget_bytes - held
    if limits.device_budget_bytes is not None:
        # The network's working memory is on the device; the host holds its 8-bit output and the band.
        host_net = tiling.Network(net.module, net.scale, net.device, net.half, net.mod, 0.0)
        tile = tiling.choose_tile(
            host, pad=limits.tile_pad, net=host_net, out_width=width * upscale, upscale=upscale, largest=largest
        )
        side = int(math.sqrt(max(limits.device_budget_bytes, 0) / net.bytes_per_pixel)) - 2 * limits.tile_pad
        step = max(8, net.mod)
        device_tile = side // step * step
        tile = min(tile, device_tile) if tile is not None and device_tile >= limits.tile_floor else None
    else:
        tile = tiling.choose_tile(
            host, pad=limits.tile_pad, net=net, out_width=width * upscale, upscale=upscale, largest=largest
        )
    if tile is None:
        raise EnhanceError(
            "over_budget",
            f"a {width}x{height} photo at upscale {upscale} needs more working "
            f"memory than the worker's budget ({limits.budget_bytes // 2**20} MiB) leaves after the "
            "photo itself; try a lower upscale",
        )
    return tile


def _prescaled(img: np.ndarray, upscale: int, scale: int) -> np.ndarray:
    """The photo shrunk by upscale/scale (area filter), so that the network's own scale
    gives the asked one. Sides not divisible are first extended by reflection (at most
    scale-1 pixels), so the shrink is exact and the output's geometry is the photo's; the
    extension falls outside the output and is cut off."""
    h, w = img.shape[:2]
    pad_w = next(k for k in range(scale) if (w + k) * upscale % scale == 0)
    pad_h = next(k for k in range(scale) if (h + k) * upscale % scale == 0)
    if pad_w or pad_h:
        img = cv2.copyMakeBorder(img, 0, pad_h, 0, pad_w, cv2.BORDER_REFLECT_101)
    size = ((w + pad_w) * upscale // scale, (h + pad_h) * upscale // scale)
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def _cropped(bands: Iterable[tiling.Band], width: int, height: int) -> Iterator[tiling.Band]:
    """Bands cut to ``width`` x ``height`` (a prescaled photo's extension removed)."""
    for band in bands:
        if band.y >= height:
            continue
        rows = min(band.pixels.shape[0], height - band.y)
        yield tiling.Band(band.y, np.ascontiguousarray(band.pixels[:rows, :width]), band.tile)


def _free_cuda_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
