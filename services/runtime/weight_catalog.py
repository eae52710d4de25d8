"""The official model weight files: where each comes from, its pinned sha256 and version,
the worker service that loads it, and where it lies in the models directory.

Every file is pinned by URL *and* sha256: a release asset that changes under the same
URL (or a proxy that serves an error page) must never be loaded as a model. Files are
stored flat in the models directory under their upstream file names, which is also
where facexlib looks for its detector/parser weights (``model_rootpath``).

Data and path lookups only; fetching and checking the files is weights.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_GFPGAN = "https://github.com/TencentARC/GFPGAN/releases/download"
_FACEXLIB = "https://github.com/xinntao/facexlib/releases/download"
_REAL_ESRGAN = "https://github.com/xinntao/Real-ESRGAN/releases/download"
_TORCHVISION = "https://download.pytorch.org/models"


@dataclass(frozen=True)
class WeightFile:
    name: str  # catalog key used across kadr (settings, readiness, CLI)
    filename: str  # upstream file name; also the on-disk name
    url: str
    # The full digest, or for torchvision files the digest prefix their name carries:
    # that prefix is what torch.hub's own check_hash verifies, and no full digest is published.
    sha256: str
    version: str  # model version where the project names one, else its release tag
    service: str  # the worker service that loads it
    size_bytes: int | None = None  # lets progress show a total when no Content-Length is sent


CATALOG: dict[str, WeightFile] = {
    w.name: w
    for w in (
        WeightFile(
            name="gfpgan_v1.4",
            filename="GFPGANv1.4.pth",
            url=f"{_GFPGAN}/v1.3.4/GFPGANv1.4.pth",
            sha256="e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad",
            version="1.4",
            service="enhance",
            size_bytes=348_632_874,
        ),
        WeightFile(
            # The URL is the one facexlib.detection.init_detection_model itself uses.
            name="retinaface_resnet50",
            filename="detection_Resnet50_Final.pth",
            url=f"{_FACEXLIB}/v0.1.0/detection_Resnet50_Final.pth",
            sha256="6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d",
            version="0.1.0",
            service="enhance",
            size_bytes=109_497_761,
        ),
        WeightFile(
            # The URL is the one facexlib.parsing.init_parsing_model itself uses.
            name="parsenet",
            filename="parsing_parsenet.pth",
            url=f"{_FACEXLIB}/v0.2.2/parsing_parsenet.pth",
            sha256="3d558d8d0e42c20224f13cf5a29c79eba2d59913419f945545d8cf7b72920de2",
            version="0.2.2",
            service="enhance",
            size_bytes=85_331_193,
        ),
        WeightFile(
            name="realesr_general_x4v3",
            filename="realesr-general-x4v3.pth",
            url=f"{_REAL_ESRGAN}/v0.2.5.0/realesr-general-x4v3.pth",
            sha256="8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292",
            version="0.2.5.0",
            service="enhance",
            size_bytes=4_885_111,
        ),
        WeightFile(
            name="realesrgan_x2plus",
            filename="RealESRGAN_x2plus.pth",
            url=f"{_REAL_ESRGAN}/v0.2.1/RealESRGAN_x2plus.pth",
            sha256="49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb",
            version="0.2.1",
            service="enhance",
            size_bytes=67_061_725,
        ),
        *(
            WeightFile(
                name=name,
                filename=filename,
                url=f"{_TORCHVISION}/{filename}",
                sha256=filename.rsplit("-", 1)[1].removesuffix(".pth"),
                version="torchvision-" + filename.rsplit("-", 1)[1].removesuffix(".pth"),
                service="segment",
            )
            for name, filename in (
                ("deeplabv3_resnet101", "deeplabv3_resnet101_coco-586e9e4e.pth"),
                ("deeplabv3_resnet50", "deeplabv3_resnet50_coco-cd0a2569.pth"),
                ("deeplabv3_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large-fc3c493d.pth"),
                ("lraspp_mobilenet_v3_large", "lraspp_mobilenet_v3_large-d234d4ea.pth"),
            )
        ),
    )
}


def missing(models_dir: Path, names: Iterable[str]) -> list[str]:
    """File names of the catalog entries not present (cheap: no hashing), for readiness."""
    return [entry(n).filename for n in names if not weight_path(models_dir, n).is_file()]


def version_of(names: Iterable[str]) -> str:
    """One version string for a model built from several files (part of cache keys)."""
    return "+".join(entry(n).version for n in names)


def weight_path(models_dir: Path, name: str) -> Path:
    return Path(models_dir) / entry(name).filename


def entry(name: str) -> WeightFile:
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError(f"unknown weight file {name!r}; known: {', '.join(sorted(CATALOG))}") from None


def selected(names: Iterable[str] | None) -> list[WeightFile]:
    """The entries named, or the whole catalog for None."""
    if names is None:
        return list(CATALOG.values())
    return [entry(n) for n in names]
