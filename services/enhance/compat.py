"""Compatibility shim for basicsr 1.4.2 on modern torchvision.

basicsr 1.4.2 (and through it gfpgan, realesrgan) imports
``torchvision.transforms.functional_tensor``, a private module torchvision removed
in 0.17. The only name basicsr takes from it is ``rgb_to_grayscale``, which the
public ``torchvision.transforms.functional`` still provides, so an alias module is
enough. Install it before the first import of basicsr/gfpgan/realesrgan/facexlib.
"""

from __future__ import annotations

import sys
import types

_LEGACY_NAME = "torchvision.transforms.functional_tensor"


def install_torchvision_shim() -> None:
    """Register the legacy module name if this torchvision lacks it (idempotent)."""
    if _LEGACY_NAME in sys.modules:
        return
    try:
        import torchvision.transforms.functional_tensor  # noqa: F401  (old torchvision: nothing to do)

        return
    except ImportError:
        pass
    from torchvision.transforms import functional

    shim = types.ModuleType(_LEGACY_NAME)
    shim.__dict__["rgb_to_grayscale"] = functional.rgb_to_grayscale  # a ModuleType declares no such attribute
    sys.modules[_LEGACY_NAME] = shim
