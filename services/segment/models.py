"""Loaders for the segment worker (and ``register_models``, the registry entries a
process serves): torchvision DeepLabv3 / LR-ASPP with VOC's 21 classes.

Built from files in the models directory only (``kadr models download`` puts the
official torchvision files there); torchvision's own ``weights=`` path would download
into ~/.cache at run time, which a worker must never do.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torchvision.models import segmentation as tvseg

from services.contracts.segment_options import MODELS
from services.runtime import weight_catalog
from services.runtime.device import select_device
from services.runtime.registry import MissingWeightsError, registry
from services.runtime.weight_catalog import CATALOG, weight_path
from services.segment.settings import SegmentSettings

# Catalog name → torchvision builder; COCO-trained DeepLabv3 files carry the auxiliary head.
_BUILDERS: dict[str, tuple[Callable[..., nn.Module], bool]] = {
    "deeplabv3_resnet101": (tvseg.deeplabv3_resnet101, True),
    "deeplabv3_resnet50": (tvseg.deeplabv3_resnet50, True),
    "deeplabv3_mobilenet_v3_large": (tvseg.deeplabv3_mobilenet_v3_large, True),
    "lraspp_mobilenet_v3_large": (tvseg.lraspp_mobilenet_v3_large, False),
}
assert set(_BUILDERS) == set(MODELS)

# torchvision's preprocessing for these weights (ImageNet statistics).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def segmentation_network(name: str) -> nn.Module:
    """The architecture with random weights (also what test fixtures save)."""
    build, aux = _BUILDERS[name]
    kwargs = {"weights": None, "weights_backbone": None, "num_classes": 21}
    if aux:
        kwargs["aux_loss"] = True
    return build(**kwargs)


def build_segmenter(name: str, models_dir: Path, device: torch.device) -> nn.Module:
    path = weight_path(Path(models_dir).resolve(), name)
    if not path.is_file():
        raise MissingWeightsError(f"missing: {CATALOG[name].filename}; run `kadr models download`")
    torch.set_flush_denormal(True)  # random/near-zero activations otherwise slow the CPU 3x
    net = segmentation_network(name)
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    # Inference needs only the main head: drop the auxiliary one to save memory and time.
    if getattr(net, "aux_classifier", None) is not None:
        # torch types Module.__setattr__ as Tensor | Module, yet None is how a submodule is dropped.
        net.aux_classifier = None  # type: ignore[assignment]
    return net.eval().to(device)


@torch.inference_mode()
def class_probabilities(net: nn.Module, frames_rgb: torch.Tensor, class_index: int) -> torch.Tensor:
    """frames_rgb: (N, 3, H, W) float in [0, 1] → (N, H, W) softmax probability of one class."""
    mean = torch.tensor(MEAN, device=frames_rgb.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=frames_rgb.device).view(1, 3, 1, 1)
    logits = net((frames_rgb - mean) / std)["out"]
    return torch.softmax(logits, dim=1)[:, class_index]


def register_models(s: SegmentSettings) -> None:
    """Every model of the catalog, lazily: loaded at warm-up or on first use."""
    device = select_device(s.device)
    for name in MODELS:
        _register(name, s, device)


def _register(name: str, s: SegmentSettings, device: torch.device) -> None:
    registry.register(
        name,
        lambda: build_segmenter(name, s.models_dir, device),
        version=weight_catalog.version_of([name]),
        check_files=lambda: weight_catalog.missing(s.models_dir, [name]),
    )
