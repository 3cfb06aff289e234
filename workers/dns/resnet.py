"""ResNet-50 backbone in plain torch, with torchvision's module names.

The names match torchvision's ``resnet50`` so the IMAGENET1K_V1 file (``resnet50-0676ba61.pth``) loads with
``strict=True``. This is the v1.5 variant torchvision ships: the stride of a stage sits on the 3x3 conv.
"""

from __future__ import annotations

import torch
from torch import nn

STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))
"""(bottleneck width, number of blocks) of layer1..layer4."""
EXPANSION = 4


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride), 1x1 expand, plus a residual."""

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * EXPANSION
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """ResNet-50 that returns the outputs of layer1..layer4 instead of logits.

    ``fc`` is never run; it exists only so the ImageNet checkpoint loads strictly.
    """

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = 64
        for index, (width, blocks) in enumerate(STAGES, start=1):
            stride = 1 if index == 1 else 2
            stage = [Bottleneck(in_channels, width, stride)]
            in_channels = width * EXPANSION
            stage += [Bottleneck(in_channels, width) for _ in range(blocks - 1)]
            self.add_module(f"layer{index}", nn.Sequential(*stage))
        self.fc = nn.Linear(in_channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's He init; with PyTorch's default init, random-weight activations decay to denormals
        through 50 layers and CPU inference slows down twentyfold."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """[N, 3, H, W] normalised RGB -> layer1..layer4 maps.

        Shapes: [N, 256, ceil(H/4), .], [N, 512, ceil(H/8), .], [N, 1024, ceil(H/16), .], [N, 2048, ceil(H/32), .].
        """
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return c1, c2, c3, c4
