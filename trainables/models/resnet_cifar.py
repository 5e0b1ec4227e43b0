"""ResNet-32 for 32×32 images, as LDAM-DRW's ``resnet_cifar.py`` (docs/recipe.md).

Stem conv3×3(→16)+BN+ReLU; 3 stages × 5 BasicBlocks (16/32/64, strides 1/2/2); parameter-free
"option A" shortcuts; global average pool → 64-d feature → head (Linear or NormedLinear).
Kaiming-normal init on conv and linear weights. 464,154 parameters for C=10 with a Linear head.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainables.models.registry import register_model


def _kaiming(m: nn.Module) -> None:
    if isinstance(m, (nn.Linear, nn.Conv2d)):
        nn.init.kaiming_normal_(m.weight)


class NormedLinear(nn.Module):
    """Cosine head: logits = normalize(h) @ normalize(W, dim=0), W ∈ R^{D×C}."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.weight.data.uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5)

    def forward(self, x):
        return F.normalize(x, dim=1) @ F.normalize(self.weight, dim=0)


class _ShortcutA(nn.Module):
    """Option A: subsample space by 2 and zero-pad channels; no parameters."""

    def __init__(self, planes: int):
        super().__init__()
        self.pad = planes // 4

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _ShortcutA(planes) if stride != 1 or in_planes != planes else nn.Identity()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    def __init__(self, num_blocks=(5, 5, 5), num_classes=10, in_channels=3, head="linear"):
        super().__init__()
        self.in_planes = 16
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._stage(16, num_blocks[0], 1)
        self.layer2 = self._stage(32, num_blocks[1], 2)
        self.layer3 = self._stage(64, num_blocks[2], 2)
        self.linear = NormedLinear(64, num_classes) if head == "cosine" else \
            nn.Linear(64, num_classes)
        self.apply(_kaiming)   # NormedLinear is neither Linear nor Conv: keeps its own init

    def _stage(self, planes, n, stride):
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(BasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        """Returns (logits, pooled 64-d features); IB needs the features."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        feat = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(feat), feat


@register_model("resnet32")
def resnet32(num_classes: int, *, in_channels: int = 3, head: str = "linear") -> nn.Module:
    """ResNet-32 for 32x32 images (3 stages of 5 basic blocks, 0.46 M parameters; CIFAR)."""
    return ResNetCifar((5, 5, 5), num_classes, in_channels, head)
