"""Loaders for the enhance worker: GFPGAN face restorer and Real-ESRGAN upsamplers.

Everything is built from files already in the models directory (``kadr models
download`` puts them there). The stock ``GFPGANer``/``RealESRGANer`` constructors are
avoided or fed absolute paths because both download weights into the package or the
current directory when a path is not already on disk, and a worker must never do that.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

import torch

from services.enhance.compat import install_torchvision_shim
from services.enhance.gfpgan_forward import LeanGFPGAN
from services.enhance.settings import EnhanceSettings
from services.enhance.upsamplers import UPSAMPLER_SCALE, UPSAMPLER_WEIGHTS, UpsamplerKind
from services.runtime import weight_catalog
from services.runtime.device import select_device
from services.runtime.registry import MissingWeightsError, registry
from services.runtime.weight_catalog import CATALOG, weight_path

install_torchvision_shim()  # must precede every basicsr/gfpgan/realesrgan/facexlib import

from basicsr.archs.rrdbnet_arch import RRDBNet  # noqa: E402
from facexlib.utils.face_restoration_helper import FaceRestoreHelper  # noqa: E402
from gfpgan import GFPGANer  # noqa: E402
from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean  # noqa: E402
from realesrgan import RealESRGANer  # noqa: E402
from realesrgan.archs.srvgg_arch import SRVGGNetCompact  # noqa: E402

log = logging.getLogger(__name__)

# Catalog names of the files each model needs. facexlib resolves the detector and
# parser weights by their upstream file names inside ``model_rootpath``.
RESTORER_WEIGHTS = ("gfpgan_v1.4", "retinaface_resnet50", "parsenet")


class MissingWeights(MissingWeightsError):
    """Weight files are not in the models directory; the operator must fetch them.

    A MissingWeightsError, so the registry reports ``missing_weights`` (not ``failed``)
    even when a file disappears between its file check and the load.
    """

    code = "missing_weights"

    def __init__(self, missing: list[str]):
        self.missing = list(missing)
        super().__init__(
            f"missing model weight files: {', '.join(self.missing)}; run `kadr models download` on the server"
        )


class WeightsLoadError(Exception):
    """A weight file exists but cannot be loaded (truncated, wrong format, wrong architecture)."""

    code = "weights_unloadable"


def gfpgan_network() -> GFPGANv1Clean:
    """GFPGAN v1.4 architecture, with exactly the arguments GFPGANer uses for arch='clean'."""
    return GFPGANv1Clean(
        out_size=512,
        num_style_feat=512,
        channel_multiplier=2,
        decoder_load_path=None,
        fix_decoder=False,
        num_mlp=8,
        input_is_latent=True,
        different_w=True,
        narrow=1,
        sft_half=True,
    )


def upsampler_network(kind: UpsamplerKind) -> torch.nn.Module:
    net: torch.nn.Module  # basicsr/realesrgan are untyped: their classes are Any to mypy
    if kind == "general_x4v3":
        net = SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32, upscale=4, act_type="prelu")
    elif kind == "x2plus":
        net = RRDBNet(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32, scale=2)
    else:
        raise ValueError(f"unknown upsampler kind {kind!r}; expected one of {sorted(UPSAMPLER_WEIGHTS)}")
    return net


class Restorer(GFPGANer):  # type: ignore[misc]  # gfpgan ships no type information
    """A GFPGANer assembled from local files.

    ``GFPGANer.__init__`` is deliberately not called: it points facexlib at the
    relative ``gfpgan/weights`` directory (downloading there when empty) and loads the
    checkpoint with a bare ``torch.load``. The attributes it sets are set here instead,
    so ``GFPGANer.enhance`` and services.enhance.pipeline both work on this object.

    Not thread-safe: ``face_helper`` keeps per-image state. One restorer per worker process.
    """

    def __init__(
        self,
        gfpgan: torch.nn.Module,
        face_helper: FaceRestoreHelper,
        *,
        upscale: int,
        bg_upsampler: Upsampler | None,
        device: torch.device,
    ) -> None:
        self.gfpgan = gfpgan
        self.face_helper = face_helper
        self.upscale = upscale
        self.bg_upsampler = bg_upsampler
        self.device = device


class Upsampler(RealESRGANer):  # type: ignore[misc]  # realesrgan ships no type information
    """RealESRGANer whose tiled path lets errors out.

    The stock ``tile_process`` catches RuntimeError (which includes CUDA out-of-memory),
    prints it and goes on with the previous tile's output: the first failing tile ends
    in an UnboundLocalError, a later one silently pastes the wrong pixels. The OOM
    fallback in the pipeline needs the error itself. The per-tile progress print goes too.
    """

    def tile_process(self) -> None:
        batch, channel, height, width = self.img.shape
        self.output = self.img.new_zeros((batch, channel, height * self.scale, width * self.scale))
        tiles_x = math.ceil(width / self.tile_size)
        tiles_y = math.ceil(height / self.tile_size)
        pad = self.tile_pad
        for y in range(tiles_y):
            for x in range(tiles_x):
                x0, y0 = x * self.tile_size, y * self.tile_size
                x1, y1 = min(x0 + self.tile_size, width), min(y0 + self.tile_size, height)
                px0, py0 = max(x0 - pad, 0), max(y0 - pad, 0)
                px1, py1 = min(x1 + pad, width), min(y1 + pad, height)
                with torch.no_grad():
                    out_tile = self.model(self.img[:, :, py0:py1, px0:px1])
                s = self.scale
                # Drop the padding margin from the model's output before placing the tile.
                ox, oy = (x0 - px0) * s, (y0 - py0) * s
                self.output[:, :, y0 * s : y1 * s, x0 * s : x1 * s] = out_tile[
                    :, :, oy : oy + (y1 - y0) * s, ox : ox + (x1 - x0) * s
                ]


def build_restorer(
    models_dir: Path, device: torch.device, *, bg_upsampler: Upsampler | None = None, upscale: int = 2
) -> Restorer:
    # Absolute: facexlib would resolve a relative root against whatever the cwd is.
    models_dir = Path(models_dir).resolve()
    # Checked up front: facexlib downloads any file it cannot find in model_rootpath.
    _require(models_dir, RESTORER_WEIGHTS)
    _configure_torch()

    gfpgan = gfpgan_network()
    state = _load_state(weight_path(models_dir, "gfpgan_v1.4"))
    keyname = "params_ema" if "params_ema" in state else "params"
    _load_into(gfpgan, state, keyname, CATALOG["gfpgan_v1.4"].filename)
    gfpgan.eval()
    # Same arithmetic as the stock forward, a quarter of its working memory.
    gfpgan = LeanGFPGAN(gfpgan.to(device))

    try:
        with warnings.catch_warnings():
            # facexlib builds its ResNet-50 with the deprecated ``pretrained=False``;
            # the warning is about facexlib, not about anything an operator can change.
            warnings.filterwarnings("ignore", message=r"The parameter 'pretrained' is deprecated", category=UserWarning)
            warnings.filterwarnings("ignore", message=r"Arguments other than a weight enum", category=UserWarning)
            face_helper = FaceRestoreHelper(
                upscale,
                face_size=512,
                crop_ratio=(1, 1),
                det_model="retinaface_resnet50",
                save_ext="png",
                use_parse=True,
                device=device,
                model_rootpath=str(models_dir),
            )
    except (RuntimeError, OSError, KeyError, ValueError) as exc:
        raise WeightsLoadError(f"cannot load the face detector/parser weights in {models_dir}: {exc}") from exc
    log.info("GFPGAN v%s restorer loaded from %s on %s", CATALOG["gfpgan_v1.4"].version, models_dir, device)
    return Restorer(gfpgan, face_helper, upscale=upscale, bg_upsampler=bg_upsampler, device=device)


def build_upsampler(
    kind: UpsamplerKind,
    models_dir: Path,
    device: torch.device,
    *,
    tile: int = 0,
    tile_pad: int = 10,
) -> Upsampler:
    if kind not in UPSAMPLER_WEIGHTS:
        raise ValueError(f"unknown upsampler kind {kind!r}; expected one of {sorted(UPSAMPLER_WEIGHTS)}")
    name = UPSAMPLER_WEIGHTS[kind]
    models_dir = Path(models_dir).resolve()
    _require(models_dir, (name,))
    _configure_torch()
    path = weight_path(models_dir, name)
    try:
        upsampler = Upsampler(
            scale=UPSAMPLER_SCALE[kind],
            # Absolute, never a URL: RealESRGANer downloads when given https://...
            model_path=str(path),
            model=upsampler_network(kind),
            tile=tile,
            tile_pad=tile_pad,
            pre_pad=0,
            half=device.type == "cuda",  # as upstream: fp16 on CUDA, fp32 on the CPU
            device=device,
        )
    except (RuntimeError, OSError, KeyError, ValueError) as exc:
        raise WeightsLoadError(f"cannot load {path.name}: {exc}") from exc
    if device.type == "cpu":
        # oneDNN's convolutions run 1.2-2x faster on channels-last tensors (same arithmetic).
        upsampler.model = upsampler.model.to(memory_format=torch.channels_last)
    log.info("%s upsampler loaded from %s on %s (tile=%d, half=%s)", kind, path, device, tile, upsampler.half)
    return upsampler


def _require(models_dir: Path, names: Iterable[str]) -> None:
    missing = [CATALOG[n].filename for n in names if not weight_path(models_dir, n).is_file()]
    if missing:
        raise MissingWeights(missing)


def _configure_torch() -> None:
    # Denormal floats (common in random test weights, present in real ones too) run
    # through a slow microcode path on x86 CPUs; flushing them to zero costs nothing
    # in output quality. Idempotent, so every builder may call it.
    torch.set_flush_denormal(True)


def _load_state(path: Path) -> dict[str, Any]:
    try:
        # weights_only: a .pth is a pickle; never run code from a downloaded file.
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        return state
    except Exception as exc:  # torch raises a mix of pickle/runtime/EOF errors
        raise WeightsLoadError(f"cannot load {path.name}: {exc}") from exc


def _load_into(net: torch.nn.Module, state: dict[str, Any], keyname: str, filename: str) -> None:
    if keyname not in state:
        raise WeightsLoadError(f"{filename} has no {keyname!r} entry; is it the official file?")
    try:
        net.load_state_dict(state[keyname], strict=True)
    except RuntimeError as exc:
        raise WeightsLoadError(f"{filename} does not match the expected architecture: {exc}") from exc


# Registry model -> the weight files (catalog names) it is built from.
MODEL_FILES = {"gfpgan": RESTORER_WEIGHTS, **{name: (name,) for name in UPSAMPLER_WEIGHTS.values()}}


def register_models(s: EnhanceSettings) -> None:
    """The restorer and every upsampler, lazily: loaded at warm-up or on first use."""
    device = select_device(s.device)

    def restorer() -> Restorer:
        return build_restorer(s.models_dir, device)

    def upsampler(kind: UpsamplerKind) -> Callable[[], Upsampler]:
        return lambda: build_upsampler(kind, s.models_dir, device, tile_pad=s.tile_pad)

    registry.register(
        "gfpgan",
        restorer,
        version=weight_catalog.version_of(MODEL_FILES["gfpgan"]),
        check_files=lambda: weight_catalog.missing(s.models_dir, MODEL_FILES["gfpgan"]),
    )
    for kind, name in UPSAMPLER_WEIGHTS.items():
        registry.register(
            name,
            upsampler(kind),
            version=weight_catalog.version_of(MODEL_FILES[name]),
            check_files=partial(weight_catalog.missing, s.models_dir, MODEL_FILES[name]),
        )
