"""DeepLabV3+ decode head (depthwise-separable ASPP + c1 skip) and the FCN auxiliary head.

Module names follow MMSegmentation's ``DepthwiseSeparableASPPHead`` and ``FCNHead``
(``image_pool.1.{conv,bn}``, ``aspp_modules.{0..3}``, ``bottleneck``, ``c1_bottleneck``,
``sep_bottleneck.{0,1}.{depthwise_conv,pointwise_conv}``, ``conv_seg``, ``convs.0``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aiblib.model.backbone import init_conv_bn


class ConvBNReLU(nn.Module):
    """conv (no bias) -> BN -> ReLU, named like mmcv's ``ConvModule`` (``conv``, ``bn``)."""

    def __init__(self, cin: int, cout: int, k: int, *, dilation: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=dilation * (k // 2), dilation=dilation, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.activate(self.bn(self.conv(x)))


class SeparableConv(nn.Module):
    """Depthwise 3x3 (dilated) ConvBNReLU, then pointwise 1x1 ConvBNReLU."""

    def __init__(self, cin: int, cout: int, *, dilation: int = 1) -> None:
        super().__init__()
        self.depthwise_conv = ConvBNReLU(cin, cin, 3, dilation=dilation, groups=cin)
        self.pointwise_conv = ConvBNReLU(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


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
