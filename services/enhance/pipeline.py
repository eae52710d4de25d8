"""Face restoration + background super-resolution of one photo. Pure: arrays in, arrays out.

This follows ``GFPGANer.enhance`` (gfpgan 1.3.8) step by step, with the changes a
service needs: the upscale is chosen per call, the number of faces is bounded (the
detector can return thousands of boxes on a noisy image), one face failing does not
fail the photo, the fast path skips the super-resolution network, and CUDA
out-of-memory in the background upsampler is retried with smaller tiles.

The restorer (services.enhance.models.Restorer) is stateful through its
``face_helper``; callers must not share one between threads.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from services.common.schemas import EnhanceParams as EnhanceOptions  # one definition of the ranges

log = logging.getLogger(__name__)

FACE_SIZE = 512  # GFPGAN v1.4 input/output size
EYE_DIST_THRESHOLD = 5  # px; GFPGANer's bound below which a detection is a side face or noise
WHOLE_IMAGE_TILE = 512  # first tile size tried after a whole-image pass ran out of memory


@dataclass
class EnhanceResult:
    image: np.ndarray  # BGR uint8
    faces_found: int  # detections that passed the eye-distance filter, before max_faces
    faces_restored: int
    faces_failed: int  # restoration raised or produced non-finite output; original face kept
    tile_used: int | None  # background tile size that succeeded: 0 = whole image, None = no upsampler
    timings: dict[str, float] = field(default_factory=dict)  # seconds: detect, restore, background, paste

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


def enhance(img_bgr: np.ndarray, restorer, bg_upsampler, opts: EnhanceOptions, *,
            tile_floor: int = 64) -> EnhanceResult:
    img = _as_bgr(img_bgr)
    if opts.quality != "fast" and not opts.has_aligned and bg_upsampler is None:
        # Refused before the face work, which would otherwise be thrown away.
        raise EnhanceError("upsampler_unavailable",
                           f"quality {opts.quality!r} needs a background upsampler and none is loaded")
    helper = restorer.face_helper
    timings = {"detect": 0.0, "restore": 0.0, "background": 0.0, "paste": 0.0}
    helper.clean_all()
    try:
        if opts.has_aligned:
            face = cv2.resize(img, (FACE_SIZE, FACE_SIZE))
            t0 = time.perf_counter()
            restored, ok = _restore_face(restorer, face, opts.weight)
            timings["restore"] = time.perf_counter() - t0
            return EnhanceResult(restored, 1, int(ok), int(not ok), None, timings)

        # Per call, not per restorer: one loaded model serves every requested scale.
        helper.set_upscale_factor(opts.upscale)
        restorer.upscale = opts.upscale

        t0 = time.perf_counter()
        faces_found = 0
        if opts.max_faces > 0:  # 0: background only (landscapes, scans): no detector pass at all
            helper.read_image(img)
            faces_found = _detect_faces(helper, opts)
            helper.align_warp_face()
        timings["detect"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        restored_n = failed_n = 0
        for cropped in helper.cropped_faces:
            restored, ok = _restore_face(restorer, cropped, opts.weight)
            restored_n += ok
            failed_n += not ok
            helper.add_restored_face(restored)
        timings["restore"] = time.perf_counter() - t0

        h, w = img.shape[:2]
        size_up = (w * opts.upscale, h * opts.upscale)
        t0 = time.perf_counter()
        if opts.quality == "fast":
            background, tile_used = cv2.resize(img, size_up, interpolation=cv2.INTER_LANCZOS4), None
        else:
            background, tile_used = _upsample_background(img, bg_upsampler, opts, tile_floor)
        if (background.shape[1], background.shape[0]) != size_up:
            background = cv2.resize(background, size_up, interpolation=cv2.INTER_LANCZOS4)
        timings["background"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        if helper.restored_faces:
            helper.get_inverse_affine(None)
            output = helper.paste_faces_to_input_image(upsample_img=background)
        else:
            output = background
        timings["paste"] = time.perf_counter() - t0

        return EnhanceResult(output, faces_found, restored_n, failed_n, tile_used, timings)
    finally:
        # The helper outlives this call (it is part of the loaded model); leftovers
        # from a failed photo must not be pasted into the next one.
        helper.clean_all()


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


def _detect_faces(helper, opts: EnhanceOptions) -> int:
    """Run the detector and leave only the faces to restore in helper's lists; return how many were found.

    facexlib's own ``only_center_face`` turns ``det_faces`` into a bare array, and it
    has no count bound, so the selection is done here on its unfiltered output.
    """
    helper.get_face_landmarks_5(only_center_face=False, eye_dist_threshold=EYE_DIST_THRESHOLD)
    # Non-finite boxes come from a confused detector; they are not faces.
    valid = [i for i, (box, lm) in enumerate(zip(helper.det_faces, helper.all_landmarks_5))
             if np.isfinite(box).all() and np.isfinite(lm).all()]
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
            if cv2.estimateAffinePartial2D(helper.all_landmarks_5[i], helper.face_template,
                                           method=cv2.LMEDS)[0] is None:
                continue
            keep.append(i)
            if len(keep) == limit:
                break
    helper.det_faces = [helper.det_faces[i] for i in keep]
    helper.all_landmarks_5 = [helper.all_landmarks_5[i] for i in keep]
    if found > len(keep):
        log.info("restoring %d of %d detected faces (max_faces=%d, only_center_face=%s)",
                 len(keep), found, opts.max_faces, opts.only_center_face)
    return found


def _restore_face(restorer, face: np.ndarray, weight: float) -> tuple[np.ndarray, bool]:
    """Restore one aligned 512x512 BGR face; on any failure return the input face unchanged."""
    rgb = np.ascontiguousarray(face[:, :, ::-1], dtype=np.float32) / 255.0
    x = torch.from_numpy(rgb.transpose(2, 0, 1)).unsqueeze(0)
    x = ((x - 0.5) / 0.5).to(restorer.device)  # GFPGAN expects [-1, 1]
    try:
        with torch.no_grad():
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


def _upsample_background(img: np.ndarray, upsampler, opts: EnhanceOptions, tile_floor: int) -> tuple[np.ndarray, int]:
    """Super-resolve the whole photo, halving the tile size on CUDA OOM down to ``tile_floor``.

    The upsampler is shared by later calls, so its configured tile size is restored
    afterwards: one oversized photo must not slow every following one.
    """
    configured = upsampler.tile_size
    tile = opts.tile or configured
    try:
        while True:
            upsampler.tile_size = tile
            try:
                return upsampler.enhance(img, outscale=opts.upscale)[0], tile
            except torch.cuda.OutOfMemoryError:
                _free_cuda_cache()
                smaller = WHOLE_IMAGE_TILE if tile == 0 else tile // 2
                if smaller < tile_floor:
                    raise EnhanceError(
                        "gpu_out_of_memory",
                        f"the GPU ran out of memory upscaling a {img.shape[1]}x{img.shape[0]} image even with "
                        f"{tile}px tiles; try a smaller image or a lower upscale",
                    ) from None
                log.warning("GPU out of memory with tile=%s; retrying with tile=%d", tile or "whole image", smaller)
                tile = smaller
    finally:
        upsampler.tile_size = configured


def _free_cuda_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
