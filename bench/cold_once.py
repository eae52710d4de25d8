"""One photo in a fresh process: import, load every model, enhance, write, exit.

This is the origin's "subprocess per request" design, kept only as the baseline the
resident worker is measured against (bench/enhance_overhead.py runs it).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def main() -> None:
    t0 = time.perf_counter()
    models_dir, photo, out, weight = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4])
    from services.contracts.schemas import EnhanceParams
    from services.enhance import models
    from services.enhance.pipeline import enhance
    from services.media import images
    from services.runtime.device import select_device

    device = select_device("auto")
    restorer = models.build_restorer(models_dir, device)
    t_loaded = time.perf_counter()
    img = images.decode_bgr(photo.read_bytes(), max_pixels=10**8)
    res = enhance(img, restorer, None, EnhanceParams(quality="fast", upscale=2, only_center_face=True, weight=weight))
    assert res.image is not None  # enhance() gathers the bands into one image
    out.write_bytes(images.encode_image(res.image, "jpeg"))
    print(f"load={t_loaded - t0:.3f} total={time.perf_counter() - t0:.3f}")


if __name__ == "__main__":
    main()
