"""GFPGAN v1.4's forward pass with fewer activations alive at once.

The stock ``GFPGANv1Clean.forward`` keeps every U-Net feature, a clone of every SFT
condition and the last U-Net feature map alive through the whole StyleGAN decoder, and
its style convolutions and SFT step build a new full-size tensor per operation: one
512x512 face peaks at ~530 MB over the idle process on the CPU, more than a whole
12 MP photo's background pass needs. This is the same computation, operation for
operation (so the output is the same to the bit: tests/integration/test_enhance_models.py), with each
tensor released once used and the elementwise steps done in place: ~225 MB live. The
heap's freed pages go back to the system between stages (``settle``, see memory.py),
or glibc's leftovers put the process's growth at 330-450 MB instead of ~250.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from services.enhance.memory import settle
from services.enhance.strips import in_strips

if TYPE_CHECKING:  # gfpgan is untyped: these are Any to mypy, named for the reader
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean, StyleGAN2GeneratorCSFT
    from gfpgan.archs.stylegan2_clean_arch import ModulatedConv2d, StyleConv, ToRGB


class LeanGFPGAN(nn.Module):
    """Wraps a loaded ``GFPGANv1Clean``; called like it (``return_rgb`` is ignored: the
    intermediate RGB outputs are a training aid nobody here reads)."""

    def __init__(self, net: GFPGANv1Clean) -> None:
        super().__init__()
        self.net = net

    def forward(
        self, x: torch.Tensor, return_rgb: bool = False, weight: float = 0.5, **_: object
    ) -> tuple[torch.Tensor, None]:
        n = self.net
        feat: torch.Tensor | None = F.leaky_relu_(n.conv_body_first(x), negative_slope=0.2)
        del x
        skips: list[torch.Tensor] = []
        for down in n.conv_body_down[: n.log_size - 2]:
            feat = down(feat)
            skips.insert(0, feat)
            settle()
        feat = F.leaky_relu_(n.final_conv(feat), negative_slope=0.2)
        style = n.final_linear(feat.view(feat.size(0), -1))
        if n.different_w:
            style = style.view(style.size(0), -1, n.num_style_feat)
        conditions: list[torch.Tensor] = []
        for i in range(n.log_size - 2):
            assert feat is not None  # only the last level lets it go
            feat = feat + skips.pop(0)  # the list's reference goes: this level's skip is freed once added
            if i == n.log_size - 3 and feat.shape[-2] * 2 >= STRIP_FROM:
                # The top level (512 px): up-block and both condition branches a strip at
                # a time; only the conditions are kept whole (the decoder needs them),
                # the level's own feature map is never needed whole.
                up, cs, csh = n.conv_body_up[i], n.condition_scale[i], n.condition_shift[i]

                def level(
                    t: torch.Tensor, up: nn.Module = up, cs: nn.Module = cs, csh: nn.Module = csh
                ) -> torch.Tensor:
                    f = up(t)
                    return torch.cat([cs(f), csh(f)], dim=1)

                both = in_strips(level, feat, scale=2, out_rows=STRIP_ROWS, halo=8)
                half = both.shape[1] // 2
                conditions += [both[:, :half], both[:, half:]]
                del both
                feat = None
            else:
                feat = n.conv_body_up[i](feat)
                conditions.append(n.condition_scale[i](feat))
                conditions.append(n.condition_shift[i](feat))
            settle()
        del feat, skips
        settle()
        return _decode(n.stylegan_decoder, style, conditions, input_is_latent=n.input_is_latent), None


def _decode(
    dec: StyleGAN2GeneratorCSFT, style: torch.Tensor, conditions: list[torch.Tensor], *, input_is_latent: bool
) -> torch.Tensor:
    """StyleGAN2GeneratorCSFT.forward for one style code, random noise, no truncation."""
    if not input_is_latent:
        style = dec.style_mlp(style)
    latent = style if style.ndim >= 3 else style.unsqueeze(1).repeat(1, dec.num_latent, 1)
    out = dec.constant_input(latent.shape[0])
    out = _style_conv(dec.style_conv1, [out], latent[:, 0])
    skip: torch.Tensor = dec.to_rgb1(out, latent[:, 1])
    i = 1
    levels = list(zip(dec.style_convs[::2], dec.style_convs[1::2], dec.to_rgbs))
    for n, (conv1, conv2, to_rgb) in enumerate(levels):
        # Condition pairs are taken in order, the list letting each go: its first two are this level's.
        if n == len(levels) - 1 and out.shape[-2] * 2 >= STRIP_FROM and conditions:
            # The top level, a strip of rows at a time through both convolutions and the
            # RGB layer: its 512 px feature maps never exist whole.
            scale, shift = conditions.pop(0), conditions.pop(0)
            return _top_level(
                conv1,
                conv2,
                to_rgb,
                out,
                latent[:, i],
                latent[:, i + 1],
                latent[:, i + 2],
                scale,
                shift,
                skip,
                sft_half=dec.sft_half,
            )
        holder = [out]
        del out
        out = _style_conv(conv1, holder, latent[:, i])
        if conditions:
            scale, shift = conditions.pop(0), conditions.pop(0)
            if dec.sft_half:  # SFT on the second half of the channels, in place
                out_sft = torch.split(out, int(out.size(1) // 2), dim=1)[1]
                out_sft.mul_(scale).add_(shift)
            else:
                out.mul_(scale).add_(shift)
            del scale, shift
        holder = [out]
        del out
        out = _style_conv(conv2, holder, latent[:, i + 1])
        skip = to_rgb(out, latent[:, i + 2], skip)
        i += 2
        settle()
    return skip


def _modulated_weight(mc: ModulatedConv2d, style: torch.Tensor, b: int, c: int) -> torch.Tensor:
    """ModulatedConv2d's per-sample weights (grouped-convolution layout)."""
    s = mc.modulation(style).view(b, 1, c, 1, 1)
    weight: torch.Tensor = mc.weight * s
    if mc.demodulate:
        demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + mc.eps)
        weight = weight * demod.view(b, mc.out_channels, 1, 1, 1)
    return weight.view(b * mc.out_channels, c, mc.kernel_size, mc.kernel_size)


def _top_level(
    conv1: StyleConv,
    conv2: StyleConv,
    to_rgb: ToRGB,
    x: torch.Tensor,
    style1: torch.Tensor,
    style2: torch.Tensor,
    style_rgb: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    skip: torch.Tensor,
    *,
    sft_half: bool,
) -> torch.Tensor:
    """The last decoder level (StyleConv up, SFT, StyleConv, ToRGB) computed a strip of
    output rows at a time. The noise maps are drawn whole, in the stock order, before
    any strip, so they are the stock ones; every other step is per pixel or reads the
    rows next to it, which each strip computes with a row of margin."""
    b, c, h, w = x.shape
    mc1, mc2, mcr = conv1.modulated_conv, conv2.modulated_conv, to_rgb.modulated_conv
    oh, ow = h * 2, w * 2
    w1 = _modulated_weight(mc1, style1, b, c)
    noise1 = x.new_empty(b, 1, oh, ow).normal_()
    w2 = _modulated_weight(mc2, style2, b, mc1.out_channels)
    noise2 = x.new_empty(b, 1, oh, ow).normal_()
    wr = _modulated_weight(mcr, style_rgb, b, mc2.out_channels)
    skip = F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False) if to_rgb.upsample else skip
    rgb = x.new_empty(b, 3, oh, ow)
    p1, p2 = mc1.padding, mc2.padding
    half = mc1.out_channels // 2
    for r0 in range(0, oh, STRIP_ROWS):
        r1 = min(oh, r0 + STRIP_ROWS)
        c0, c1 = max(0, r0 - p2), min(oh, r1 + p2)  # conv1 rows the strip's conv2 reads
        y = _rows_up_conv(x, w1, mc1.out_channels, c0, c1, p1, b)
        y.mul_(2**0.5)
        y.add_(conv1.weight * noise1[:, :, c0:c1])
        y.add_(conv1.bias)
        y = conv1.activate(y)
        if sft_half:
            y[:, half:].mul_(scale[:, :, c0:c1]).add_(shift[:, :, c0:c1])
        else:
            y.mul_(scale[:, :, c0:c1]).add_(shift[:, :, c0:c1])
        y = F.pad(y, (0, 0, p2 - (r0 - c0), p2 - (c1 - r1)))  # zero rows where the image ends
        z = F.conv2d(y.reshape(1, b * mc1.out_channels, *y.shape[2:]), w2, padding=(0, p2), groups=b)
        del y
        z = z.view(b, mc2.out_channels, r1 - r0, ow)
        z.mul_(2**0.5)
        z.add_(conv2.weight * noise2[:, :, r0:r1])
        z.add_(conv2.bias)
        z = conv2.activate(z)
        o = F.conv2d(z.reshape(1, b * mc2.out_channels, r1 - r0, ow), wr, padding=mcr.padding, groups=b)
        del z
        o = o.view(b, 3, r1 - r0, ow) + to_rgb.bias
        rgb[:, :, r0:r1] = o + skip[:, :, r0:r1]
        settle()
    return rgb


def _rows_up_conv(
    x: torch.Tensor, weight: torch.Tensor, out_channels: int, a0: int, a1: int, p: int, b: int
) -> torch.Tensor:
    """Rows a0..a1 (at twice ``x``'s resolution) of conv(upsample_x2(x)), as the whole
    would give them: the source rows they read plus two of margin are upsampled, zero rows
    stand for the padding past the image's edges."""
    h = x.shape[2]
    oh = h * 2
    i0, i1 = max(0, a0 - p), min(oh, a1 + p)
    s0, s1 = max(0, i0 // 2 - 1), min(h, (i1 + 1) // 2 + 1)
    xs = F.interpolate(x[:, :, s0:s1], scale_factor=2, mode="bilinear", align_corners=False)
    xs = xs[:, :, i0 - 2 * s0 : i1 - 2 * s0]
    xs = F.pad(xs, (0, 0, p - (a0 - i0), p - (i1 - a1)))
    c = xs.shape[1]
    out = F.conv2d(xs.reshape(1, b * c, *xs.shape[2:]), weight, padding=(0, p), groups=b)
    return out.view(b, out_channels, a1 - a0, -1)


def _style_conv(layer: StyleConv, holder: list[torch.Tensor], style: torch.Tensor) -> torch.Tensor:
    """StyleConv.forward: modulated conv, x sqrt(2), noise, bias, leaky ReLU, in place.
    The input comes in a one-item list so the last reference to it can be dropped as
    soon as the (possibly upsampled) copy exists."""
    mc = layer.modulated_conv
    x = holder.pop()
    b, c, h, w = x.shape
    s = mc.modulation(style).view(b, 1, c, 1, 1)
    weight: torch.Tensor = mc.weight * s
    if mc.demodulate:
        demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + mc.eps)
        weight = weight * demod.view(b, mc.out_channels, 1, 1, 1)
    weight = weight.view(b * mc.out_channels, c, mc.kernel_size, mc.kernel_size)
    out = _modulated_conv(mc, x, weight)
    del x
    out.mul_(2**0.5)
    noise = out.new_empty(b, 1, *out.shape[2:4]).normal_()
    out.add_(layer.weight * noise)
    del noise
    out.add_(layer.bias)
    activated: torch.Tensor = layer.activate(out)
    return activated


STRIP_FROM = 256  # output side from which a convolution runs in strips of rows
STRIP_ROWS = 64


def _modulated_conv(mc: ModulatedConv2d, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """ModulatedConv2d's resampling and grouped convolution. At 256 px and up it runs a
    strip of output rows at a time (upsampling only the input rows the strip reads), so
    neither the whole upsampled input nor the convolution's own copies of it exist at
    once. A strip's rows are computed from the same inputs with the same weights."""
    b, c, h, w = x.shape
    up = mc.sample_mode == "upsample"
    oh = h * 2 if up else h
    if mc.sample_mode == "downsample" or oh < STRIP_FROM:
        if up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        elif mc.sample_mode == "downsample":
            x = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
        b, c, h, w = x.shape
        out = F.conv2d(x.view(1, b * c, h, w), weight, padding=mc.padding, groups=b)
        return out.view(b, mc.out_channels, *out.shape[2:4])
    p = mc.padding
    ow = w * 2 if up else w
    out = x.new_empty(b, mc.out_channels, oh, ow)
    for r0 in range(0, oh, STRIP_ROWS):
        r1 = min(oh, r0 + STRIP_ROWS)
        a0, a1 = max(0, r0 - p), min(oh, r1 + p)  # input rows (at output resolution) the strip reads
        if up:
            # Bilinear x2 reads source rows floor(j/2 - 1/4) and the next: two rows of
            # margin keep every kept row's interpolation identical to the whole image's.
            s0, s1 = max(0, a0 // 2 - 1), min(h, (a1 + 1) // 2 + 1)
            xs = F.interpolate(x[:, :, s0:s1], scale_factor=2, mode="bilinear", align_corners=False)
            xs = xs[:, :, a0 - 2 * s0 : a1 - 2 * s0]
        else:
            xs = x[:, :, a0:a1]
        xs = F.pad(xs, (0, 0, p - (r0 - a0), p - (a1 - r1)))  # zero rows where the image ends
        _, _, sh, sw = xs.shape
        o = F.conv2d(xs.reshape(1, b * c, sh, sw), weight, padding=(0, p), groups=b)
        out[:, :, r0:r1] = o.view(b, mc.out_channels, r1 - r0, ow)
        del xs, o
    return out
