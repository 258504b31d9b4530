"""ResNet-V1c backbone (deep 3x3 stem, dilated stages), as in MMSegmentation.

Module names follow MMSegmentation's ``ResNetV1c`` so that its checkpoints load by name:
``stem.{0,1,3,4,6,7}``, ``layer{1..4}.{j}.{conv1,bn1,conv2,bn2[,conv3,bn3]}``,
``layer{i}.0.downsample.{0,1}``.
"""

from __future__ import annotations

from torch import Tensor, nn

# depth -> (block kind, blocks per stage)
ARCH = {18: ("basic", (2, 2, 2, 2)), 50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3))}
# output stride -> (stage strides, stage dilations)
STRIDES = {8: ((1, 2, 1, 1), (1, 1, 2, 4)), 16: ((1, 2, 2, 1), (1, 1, 1, 2))}


def _conv_bn(cin: int, cout: int, k: int, *, stride: int = 1, dilation: int = 1) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    pad = dilation * (k // 2)
    return nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, bias=False), nn.BatchNorm2d(cout)


def init_conv_bn(module: nn.Module) -> None:
    """Kaiming-normal (fan_out, relu) for every conv, weight 1 / bias 0 for every BatchNorm."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class BasicBlock(nn.Module):
    """Two 3x3 convs. As in MMSegmentation, only ``conv1`` carries the stride and the dilation."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, *, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(inplanes, planes, 3, stride=stride, dilation=dilation)
        self.conv2, self.bn2 = _conv_bn(planes, planes, 3)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride, dilation: "pytorch" style) -> 1x1 (x4 channels)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, *, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(inplanes, planes, 1)
        self.conv2, self.bn2 = _conv_bn(planes, planes, 3, stride=stride, dilation=dilation)
        self.conv3, self.bn3 = _conv_bn(planes, planes * 4, 1)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def _make_stage(block: type[BasicBlock] | type[Bottleneck], inplanes: int, planes: int, blocks: int, *,
                stride: int, dilation: int, contract_dilation: bool = True) -> nn.Sequential:
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(*_conv_bn(inplanes, planes * block.expansion, 1, stride=stride))
    first = dilation // 2 if (contract_dilation and dilation > 1) else dilation
    layers = [block(inplanes, planes, stride=stride, dilation=first, downsample=downsample)]
    for _ in range(1, blocks):
        layers.append(block(planes * block.expansion, planes, dilation=dilation))
    return nn.Sequential(*layers)


class ResNetV1c(nn.Module):
    """Dilated ResNet-V1c returning the four stage features ``[c1, c2, c3, c4]``.

    Input ``x``: (B, in_channels, H, W). Outputs (channels for depth 18 / 50 and 101):

    - c1: (B, 64 / 256, H/4, W/4)
    - c2: (B, 128 / 512, H/8, W/8)
    - c3: (B, 256 / 1024, H/8, W/8) at output stride 8, H/16 at 16
    - c4: (B, 512 / 2048, H/8, W/8) at output stride 8, H/16 at 16

    Output stride 8 (the reference "D8"): stage strides (1, 2, 1, 1), dilations (1, 1, 2, 4);
    output stride 16: strides (1, 2, 2, 1), dilations (1, 1, 1, 2). With ``contract_dilation``
    the first block of a dilated stage uses half the dilation (as the reference).
    """

    def __init__(self, depth: int = 50, output_stride: int = 8, in_channels: int = 3, *,
                 contract_dilation: bool = True) -> None:
        super().__init__()
        if depth not in ARCH:
            raise ValueError(f"depth must be one of {sorted(ARCH)}, got {depth}")
        if output_stride not in STRIDES:
            raise ValueError(f"output_stride must be one of {sorted(STRIDES)}, got {output_stride}")
        kind, counts = ARCH[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        strides, dilations = STRIDES[output_stride]
        self.depth, self.output_stride = depth, output_stride
        stem: list[nn.Module] = []
        for cin, cout, s in ((in_channels, 32, 2), (32, 32, 1), (32, 64, 1)):
            stem += [*_conv_bn(cin, cout, 3, stride=s), nn.ReLU(inplace=True)]
        self.stem = nn.Sequential(*stem)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        for i, (n, s, d) in enumerate(zip(counts, strides, dilations)):
            planes = 64 * 2**i
            stage = _make_stage(block, inplanes, planes, n, stride=s, dilation=d, contract_dilation=contract_dilation)
            self.add_module(f"layer{i + 1}", stage)
            inplanes = planes * block.expansion
        self.channels: tuple[int, ...] = tuple(64 * 2**i * block.expansion for i in range(4))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming (fan_out) convs, BN 1/0, last BN of each block zero (MMSeg's init without pretraining)."""
        init_conv_bn(self)
        for m in self.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)
            elif isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, C, H, W) -> [c1, c2, c3, c4] (see the class docstring for shapes)."""
        x = self.maxpool(self.stem(x))
        feats = []
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
            feats.append(x)
        return feats
