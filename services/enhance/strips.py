"""Running a local part of a network a strip of rows at a time.

A convolution, a pointwise activation, batch norm in eval mode or a x2 resample only
mixes rows within a small reach, so each strip of output rows can be computed from the
input rows it depends on plus a margin wider than that reach. The margin's own top and
bottom rows see false image edges (padding, interpolation clamping) where the whole
tensor would have real rows; they are cut off. What remains is the same computation on
the same rows, so the result matches the whole-tensor call (the tests compare bits),
while only a strip's intermediate maps exist at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def in_strips(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, scale: float, out_rows: int, halo: int
) -> torch.Tensor:
    """``fn(x)`` for a local ``fn`` that scales rows by ``scale`` (0.25, 1, 2, 4 ...),
    ``out_rows`` output rows at a time; ``halo`` input rows of margin (more than fn's
    reach, and a multiple of 1/scale so strided steps stay aligned)."""
    h = x.shape[-2]
    oh = int(h * scale)
    # Allocated from the first strip's shape; strips are written into it (no concatenation copy).
    out: torch.Tensor | None = None
    for o0 in range(0, oh, out_rows):
        o1 = min(oh, o0 + out_rows)
        a0 = max(0, int(o0 / scale) - halo)
        a1 = min(h, -(-o1 // scale) + halo) if scale >= 1 else min(h, int(o1 / scale) + halo)
        y = fn(x[..., int(a0) : int(a1), :])
        first = int(round(a0 * scale))
        if out is None:
            out = y.new_empty(*y.shape[:-2], oh, y.shape[-1])
        out[..., o0:o1, :] = y[..., o0 - first : o1 - first, :]
        del y
    assert out is not None  # every caller asks for at least one row (oh >= 1)
    return out
