"""The camera worker's one model: OpenCV's licence-plate cascade (services/camera/plates.py),
served by the registry like every worker's models so readiness reports it."""

from __future__ import annotations

import cv2

from services.camera.plates import REGISTRY_NAME, load_cascade
from services.runtime.registry import registry

WARM = [REGISTRY_NAME]


def register_models() -> None:
    if REGISTRY_NAME not in registry.names():
        registry.register(REGISTRY_NAME, load_cascade, version=f"opencv-{cv2.__version__}")
