"""facexlib's ParseNet (the face-parsing net behind GFPGAN's paste-back mask) run a
strip of rows at a time where its feature maps are large.

Called whole on a 512x512 face it peaks at ~390 MB over the idle process on the CPU
(64-128 channels at 512 and 256 px) and also computes an RGB output nobody reads. Its
high-resolution layers are local (3x3 convolutions, batch norm in eval mode, pointwise
activations, x2 nearest upsampling), so each strip of output rows is computed from the
input rows it depends on plus a margin wider than their reach; rows the margin's false
edges touch are cut off. The 128-px-and-below middle runs whole. Same convolutions on
the same rows: the classes are the stock ones (tests/unit/test_enhance_pipeline.py). It runs right
after GFPGAN's forward, whose freed buffers are handed back first (``settle``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from numpy.typing import NDArray

from services.enhance.memory import settle
from services.enhance.strips import in_strips

if TYPE_CHECKING:
    from facexlib.parsing.parsenet import ParseNet  # untyped: Any to mypy

HEAD_LAYERS = 3  # encoder[0:3]: 512 -> 128 px
TAIL_LAYERS = 2  # decoder[-2:] + out_mask_conv: 128 -> 512 px
HEAD_HALO = 16  # input rows of margin; the head reaches 7, a multiple of 4 keeps strides aligned
TAIL_HALO = 4  # rows at 128 px; the tail reaches 2
STRIP = 64  # output rows per strip at 128 px (head) and 512 px (tail)


def labels(net: ParseNet, x: torch.Tensor) -> NDArray[np.uint8]:
    """Parse classes (HxW uint8) of one normalised face ``x`` (1x3x512x512), as
    ``net(x)[0].argmax(1)`` gives them."""
    enc, dec = net.encoder, net.decoder
    with torch.inference_mode():
        settle()
        head = in_strips(lambda t: enc[:HEAD_LAYERS](t), x, scale=0.25, out_rows=STRIP // 2, halo=HEAD_HALO)
        del x
        settle()
        feat = enc[HEAD_LAYERS:](head)
        del head
        mid = dec[: len(dec) - TAIL_LAYERS](feat + net.body(feat))
        del feat
        settle()

        def tail(t: torch.Tensor) -> torch.Tensor:
            logits: torch.Tensor = net.out_mask_conv(dec[len(dec) - TAIL_LAYERS :](t))
            return logits.argmax(dim=1).to(torch.uint8)

        out = in_strips(tail, mid, scale=4, out_rows=STRIP, halo=TAIL_HALO)
    return out.squeeze(0).cpu().numpy()
