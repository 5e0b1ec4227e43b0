"""K CIFAR ResNets as one network: grouped convolutions over stacked members (HFTA's way).

A convolution with ``groups=K`` over K stacked channel blocks computes exactly K separate
convolutions, BatchNorm over K·C channels is exactly K BatchNorms (statistics are per
channel), and SGD with momentum and weight decay is element-wise: so one fused backbone
trained on K stacked batches is K ordinary backbones, each on its own batch.

Layout: member k owns channel block k of every activation (N × K·C × H × W) and rows
``k·C_out:(k+1)·C_out`` of every weight and BatchNorm vector. The module mirrors
``ResNetCifar``'s attribute names (conv1, bn1, layer1.0.conv1, ...), so a fused state_dict
and a member's state_dict have the same keys; ``fuse`` concatenates the members' tensors
along dim 0 and ``member_state`` takes member k's chunk back. The head (Linear or cosine) is
not fused: each member keeps its own (tiny) head, so members may have different heads.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainables.models.resnet_cifar import ResNetCifar


class _FusedShortcutA(nn.Module):
    """Option A per member: subsample space by 2 and zero-pad EACH member's channel block."""

    def __init__(self, k: int, planes: int):
        super().__init__()
        self.k, self.pad = k, planes // 4

    def forward(self, x):
        x = x[:, :, ::2, ::2]
        n, kc, h, w = x.shape
        x = x.reshape(n, self.k, kc // self.k, h, w)          # pad dim 2: one block each
        x = F.pad(x, (0, 0, 0, 0, self.pad, self.pad))
        return x.reshape(n, -1, h, w)


class _FusedBlock(nn.Module):
    def __init__(self, k: int, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(k * in_planes, k * planes, 3, stride, 1, bias=False, groups=k)
        self.bn1 = nn.BatchNorm2d(k * planes)
        self.conv2 = nn.Conv2d(k * planes, k * planes, 3, 1, 1, bias=False, groups=k)
        self.bn2 = nn.BatchNorm2d(k * planes)
        self.shortcut = _FusedShortcutA(k, planes) if stride != 1 or in_planes != planes \
            else nn.Identity()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class FusedResNetCifar(nn.Module):
    """The backbone of K ``ResNetCifar`` members (no head): (N, K·C_in, H, W) -> (N, K, 64)."""

    def __init__(self, k: int, num_blocks=(5, 5, 5), in_channels: int = 3):
        super().__init__()
        self.k, self.in_planes = k, 16
        self.conv1 = nn.Conv2d(k * in_channels, k * 16, 3, 1, 1, bias=False, groups=k)
        self.bn1 = nn.BatchNorm2d(k * 16)
        self.layer1 = self._stage(16, num_blocks[0], 1)
        self.layer2 = self._stage(32, num_blocks[1], 2)
        self.layer3 = self._stage(64, num_blocks[2], 2)

    def _stage(self, planes, n, stride):
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(_FusedBlock(self.k, self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        # the loader yields float32; a float64 pack (the equivalence tests) casts here
        x = x.to(self.conv1.weight.dtype)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return F.adaptive_avg_pool2d(out, 1).flatten(1).view(x.shape[0], self.k, -1)


HEAD_PREFIX = "linear."   # ResNetCifar's head: not part of the fused backbone


def backbone_keys(model: ResNetCifar) -> list[str]:
    return [k for k in model.state_dict() if not k.startswith(HEAD_PREFIX)]


def fuse(models: list[ResNetCifar]) -> FusedResNetCifar:
    """The fused backbone holding ``models``' backbones (copies: the members keep theirs)."""
    m0 = models[0]
    blocks = tuple(len(getattr(m0, f"layer{i}")) for i in (1, 2, 3))
    fused = FusedResNetCifar(len(models), blocks, m0.conv1.in_channels)
    ref = m0.conv1.weight
    fused = fused.to(device=ref.device, dtype=ref.dtype)
    states = [m.state_dict() for m in models]
    # num_batches_tracked is a 0-d count, equal for members stepped together: member 0's
    fused.load_state_dict({k: states[0][k] if states[0][k].dim() == 0 else
                           torch.cat([s[k] for s in states]) for k in backbone_keys(m0)})
    return fused


def member_chunk(t: torch.Tensor, k: int, size: int) -> torch.Tensor:
    """Member ``k``'s part of a fused tensor (dim 0 in ``size`` equal blocks; 0-d: shared)."""
    return t if t.dim() == 0 else t.chunk(size, dim=0)[k]
