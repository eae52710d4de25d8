"""The upsamplers by quality level: which network, its catalog name, its scale and the
working memory a tile needs per input pixel. Pure data: the enhance job sizes its tiles
from it without loading a network; ``models.py`` builds the networks it names.
"""

from __future__ import annotations

from typing import Literal

import torch

UpsamplerKind = Literal["general_x4v3", "x2plus"]

UPSAMPLER_WEIGHTS: dict[UpsamplerKind, str] = {"general_x4v3": "realesr_general_x4v3", "x2plus": "realesrgan_x2plus"}
UPSAMPLER_SCALE: dict[UpsamplerKind, int] = {"general_x4v3": 4, "x2plus": 2}
# Working memory of one tile per input pixel (padding included), fp32 on the CPU, as the
# worker process's resident size shows it (glibc's heap included, not just the live
# tensors): ~110 MB at 276 px for x4v3, ~300 MB at 212 px for x2plus. In fp16 on CUDA,
# about half (of device memory).
UPSAMPLER_BYTES_PER_PIXEL: dict[UpsamplerKind, float] = {"general_x4v3": 1500.0, "x2plus": 8000.0}


def bytes_per_pixel(kind: UpsamplerKind, device: torch.device) -> float:
    """A tile's working memory per input pixel on ``device`` (fp16 on CUDA: half)."""
    return UPSAMPLER_BYTES_PER_PIXEL[kind] / (2 if device.type == "cuda" else 1)


# Which upsampler each quality level uses (fast: none, Lanczos resize).
UPSAMPLER_FOR = {"fast": None, "medium": "realesr_general_x4v3", "high": "realesrgan_x2plus"}
UPSAMPLER_KIND = {name: kind for kind, name in UPSAMPLER_WEIGHTS.items()}
