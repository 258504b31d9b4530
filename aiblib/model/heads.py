"""DeepLabV3+ decode head (depthwise-separable ASPP + c1 skip) and the FCN auxiliary head.

:meth:`DeepLabV3PlusHead.forward` is the plain head (the reference's computation);
:meth:`DeepLabV3PlusHead.forward_masked` gives the same logits for attention-modulated inputs
while doing the sample-independent work once (see its docstring).

Module names follow MMSegmentation's ``DepthwiseSeparableASPPHead`` and ``FCNHead``
(``image_pool.1.{conv,bn}``, ``aspp_modules.{0..3}``, ``bottleneck``, ``c1_bottleneck``,
``sep_bottleneck.{0,1}.{depthwise_conv,pointwise_conv}``, ``conv_seg``, ``convs.0``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aiblib.model.attention import resize_nearest
from aiblib.model.backbone import init_conv_bn


def constant_map_conv(v: Tensor, weight: Tensor, size: tuple[int, int], *, padding: tuple[int, int],
                      dilation: tuple[int, int], out: Tensor | None = None) -> Tensor:
    """Stride-1, zero-padded, bias-free ``conv2d`` of a (h, w) map that equals ``v`` at every position,
    without making the map.

    v (N, C, 1, 1), weight (O, C, kh, kw), size (h, w) -> (N, O, h', w') with h' = h + 2 * padding
    - dilation * (kh - 1) (as ``conv2d``). Each tap adds ``weight[:, :, i, j] @ v`` where it falls
    inside the map: N*O*kh*kw*h'*w' multiply-adds instead of N*O*C*kh*kw*h'*w'. With ``out``
    (N, O, h', w') the result is added to it in place (no temporary of its size) and ``out`` returned.
    """
    kh, kw = weight.shape[-2:]
    taps = torch.einsum("nc,ocij->noij", v.flatten(1), weight).flatten(2)    # (N, O, kh*kw)
    inside = []
    for k, n, pad, dil in ((kh, size[0], padding[0], dilation[0]), (kw, size[1], padding[1], dilation[1])):
        pos = torch.arange(n + 2 * pad - dil * (k - 1), device=v.device)[None, :]
        pos = pos + torch.arange(k, device=v.device)[:, None] * dil - pad
        inside.append(((pos >= 0) & (pos < n)).to(taps.dtype))              # (k, n')
    valid = (inside[0][:, None, :, None] * inside[1][None, :, None, :]).flatten(0, 1).flatten(1)  # (kh*kw, h'*w')
    valid = valid.expand(taps.shape[0], *valid.shape)
    if out is None:
        return torch.bmm(taps, valid).view(*taps.shape[:2], *inside[0].shape[1:], inside[1].shape[1])
    try:
        flat = out.view(*out.shape[:2], -1)             # (N, O, h'*w'), the same memory
    except RuntimeError:                                # a layout whose rows and columns do not merge
        return out.add_(constant_map_conv(v, weight, size, padding=padding, dilation=dilation))
    flat.baddbmm_(taps.to(out.dtype), valid.to(out.dtype))
    return out


class ConvBNReLU(nn.Module):
    """conv (no bias) -> BN -> ReLU, named like mmcv's ``ConvModule`` (``conv``, ``bn``)."""

    def __init__(self, cin: int, cout: int, k: int, *, dilation: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=dilation * (k // 2), dilation=dilation, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.activate(self.bn(self.conv(x)))

    def after_conv(self, y: Tensor) -> Tensor:
        """BN and ReLU of an already convolved ``y`` (N, cout, H, W)."""
        return self.activate(self.bn(y))

    def folded(self) -> tuple[Tensor, Tensor]:
        """The eval-mode BN folded into the conv: ``(weight * scale, shift)`` with scale = gamma /
        sqrt(running_var + eps) and shift = beta - running_mean * scale per output channel, so that
        ``conv2d(x, w, shift) == bn(conv(x))`` in eval mode. The weight is (cout, cin, kh, kw)."""
        bn, w = self.bn, self.conv.weight
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        return w * scale.view(-1, 1, 1, 1).to(w.dtype), bn.bias - bn.running_mean * scale

    def forward_folded(self, x: Tensor, fold: bool) -> Tensor:
        """``forward(x)``; with ``fold`` (eval mode only) one convolution with the BN folded in (:meth:`folded`)."""
        if not fold:
            return self(x)
        c = self.conv
        return self.activate(F.conv2d(x, *self.folded(), c.stride, c.padding, c.dilation, c.groups))


class SeparableConv(nn.Module):
    """Depthwise 3x3 (dilated) ConvBNReLU, then pointwise 1x1 ConvBNReLU."""

    def __init__(self, cin: int, cout: int, *, dilation: int = 1) -> None:
        super().__init__()
        self.depthwise_conv = ConvBNReLU(cin, cin, 3, dilation=dilation, groups=cin)
        self.pointwise_conv = ConvBNReLU(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))

    def forward_folded(self, x: Tensor, fold: bool) -> Tensor:
        """``forward(x)``, with the eval-mode BNs folded into the convs when ``fold``."""
        return self.pointwise_conv.forward_folded(self.depthwise_conv.forward_folded(x, fold), fold)


def _init_head(head: nn.Module, classifier: nn.Conv2d) -> None:
    init_conv_bn(head)
    nn.init.normal_(classifier.weight, std=0.01)
    nn.init.zeros_(classifier.bias)


class DeepLabV3PlusHead(nn.Module):
    """``forward(c1, c4)``: c1 (N, c1_in, H/4, W/4), c4 (N, in_channels, h, w) -> logits (N, K, H/4, W/4).

    ASPP on c4 (image pooling, 1x1, separable 3x3 at ``dilations``) -> bottleneck 3x3 ->
    bilinear up to c1 and concat with the c1 skip (1x1 to ``c1_channels``) -> two separable
    3x3 -> Dropout2d -> 1x1 classifier.
    """

    def __init__(self, in_channels: int, c1_in_channels: int, num_classes: int, *, channels: int = 512,
                 c1_channels: int = 48, dilations: tuple[int, ...] = (12, 24, 36), dropout: float = 0.1) -> None:
        super().__init__()
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvBNReLU(in_channels, channels, 1))
        self.aspp_modules = nn.ModuleList(
            [ConvBNReLU(in_channels, channels, 1)] + [SeparableConv(in_channels, channels, dilation=d) for d in dilations])
        self.bottleneck = ConvBNReLU((len(dilations) + 2) * channels, channels, 3)
        self.c1_bottleneck = ConvBNReLU(c1_in_channels, c1_channels, 1)
        self.sep_bottleneck = nn.Sequential(SeparableConv(channels + c1_channels, channels),
                                            SeparableConv(channels, channels))
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        _init_head(self, self.conv_seg)

    def forward(self, c1: Tensor, c4: Tensor) -> Tensor:
        pooled = F.interpolate(self.image_pool(c4), size=c4.shape[-2:], mode="bilinear", align_corners=False)
        x = torch.cat([pooled] + [m(c4) for m in self.aspp_modules], dim=1)
        x = self.bottleneck(x)
        skip = self.c1_bottleneck(c1)
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        x = self.sep_bottleneck(torch.cat([x, skip], dim=1))
        return self.conv_seg(self.dropout(x))

    def forward_masked(self, c1: Tensor, c4: Tensor, masks: Tensor, *, batched: bool = False) -> Tensor:
        """Logits of every attention sample, the sample-independent work done once.

        c1 (B, c1_in, H/4, W/4) and c4 (B, in_channels, h, w): the stages before modulation;
        masks (n*B, 1, h, w) sample-major. Returns (n*B, K, H/4, W/4): row block ``s`` equals
        ``forward(c1 + c1 * m1_s, c4 + c4 * m_s)`` up to rounding (m1_s is m_s resized, nearest).

        The mask is one scalar per position, so the 1x1 convolutions of the c1 skip and of the
        ASPP 1x1 branch run once on the unmodulated stages and are scaled by ``1 + m`` per sample
        (with one sample, nothing to share, the ASPP 1x1 branch runs on the modulated c4 as usual);
        the image-pooling branch is constant over positions, so its share of the bottleneck 3x3
        convolution is computed from the pooled vector (:func:`constant_map_conv`), not from a map.
        In eval mode the BNs are folded into the convs they follow. With ``batched`` the per-sample part runs once on all n*B rows, otherwise one sample at a time.
        """
        b = c4.shape[0]
        n = masks.shape[0] // b
        y0 = self.aspp_modules[0].conv(c4) if n > 1 else None    # (B, channels, h, w)
        skip = self.c1_bottleneck.conv(c1)              # (B, c1_channels, H/4, W/4)
        bottleneck = self._bottleneck_weights(self.image_pool[1].conv.out_channels)
        if batched or n == 1:
            if n > 1:
                c4, y0, skip = (t.repeat(n, 1, 1, 1) for t in (c4, y0, skip))
            return self._decode_masked(c4, y0, skip, masks, bottleneck)
        return torch.cat([self._decode_masked(c4, y0, skip, masks[s * b:(s + 1) * b], bottleneck) for s in range(n)])

    def _bottleneck_weights(self, ch: int) -> tuple[Tensor, Tensor, Tensor | None]:
        """The bottleneck conv's weight (channels, 5 * channels, 3, 3) split into the pooled branch's input
        channels (the first ``ch``) and the other branches', and a bias: in eval mode the BN folded in
        (:meth:`ConvBNReLU.folded`), else None. Without autograd the larger part is copied contiguous once
        for all samples; with it, it stays a view (autograd keeps no copy)."""
        if self.training:
            weight, bias = self.bottleneck.conv.weight, None
        else:
            weight, bias = self.bottleneck.folded()
        maps = weight[:, ch:]
        return weight[:, :ch], maps if torch.is_grad_enabled() else maps.contiguous(), bias

    def _decode_masked(self, c4: Tensor, y0: Tensor | None, skip: Tensor, masks: Tensor,
                       bottleneck: tuple[Tensor, Tensor, Tensor | None]) -> Tensor:
        """Rows of :meth:`forward_masked` for N = len(masks) rows: c4 (N, in, h, w); y0 the ASPP 1x1 conv
        of c4 (N, channels, h, w), or None to run that branch on the modulated c4; skip the c1 skip conv
        (N, c1_channels, H/4, W/4); masks (N, 1, h, w); bottleneck: :meth:`_bottleneck_weights`.
        In eval mode every conv -> BN pair whose conv runs here has the BN folded into the conv."""
        fold = not self.training
        x4 = c4 + c4 * masks
        pooled = self.image_pool[1].forward_folded(self.image_pool[0](x4), fold)   # (N, channels, 1, 1)
        aspp = self.aspp_modules
        first = aspp[0].forward_folded(x4, fold) if y0 is None else aspp[0].after_conv(y0 * (1 + masks))
        branches = [first] + [m.forward_folded(x4, fold) for m in aspp[1:]]
        conv = self.bottleneck.conv
        y = F.conv2d(torch.cat(branches, dim=1), bottleneck[1], bottleneck[2], conv.stride, conv.padding, conv.dilation)
        y = constant_map_conv(pooled, bottleneck[0], tuple(x4.shape[-2:]), padding=conv.padding,
                              dilation=conv.dilation, out=y)
        x = self.bottleneck.activate(y) if fold else self.bottleneck.after_conv(y)
        skip = self.c1_bottleneck.after_conv(skip * (1 + resize_nearest(masks, skip.shape[-2:])))
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        x = torch.cat([x, skip], dim=1)
        for sep in self.sep_bottleneck:
            x = sep.forward_folded(x, fold)
        return self.conv_seg(self.dropout(x))


class FCNHead(nn.Module):
    """Auxiliary head: conv3x3 -> BN ReLU -> Dropout2d -> 1x1. (N, in, h, w) -> (N, K, h, w)."""

    def __init__(self, in_channels: int, num_classes: int, *, channels: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        self.convs = nn.Sequential(ConvBNReLU(in_channels, channels, 3))
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        _init_head(self, self.conv_seg)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_seg(self.dropout(self.convs(x)))
