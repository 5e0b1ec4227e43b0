"""ResNet-50 (torchvision's) for ImageNet-LT / Places-LT, with a Linear or cosine head.

``load_init_weights`` starts from a LOCAL state_dict (torchvision or our own layout; the
classifier is skipped). Beware: ImageNet-pretrained weights have seen every ImageNet label, so
they leak the balanced label set into ImageNet-LT results.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from trainables.models.registry import register_model
from trainables.models.resnet_cifar import NormedLinear


class ResNet50(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3, head: str = "linear"):
        super().__init__()
        import torchvision
        self.backbone = torchvision.models.resnet50(weights=None)
        if in_channels != 3:
            self.backbone.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.backbone.fc = nn.Identity()
        self.linear = NormedLinear(2048, num_classes) if head == "cosine" else \
            nn.Linear(2048, num_classes)

    def forward(self, x):
        """Returns (logits, pooled 2048-d features)."""
        feat = self.backbone(x)
        return self.linear(feat), feat


@register_model("resnet50")
def resnet50(num_classes: int, *, in_channels: int = 3, head: str = "linear") -> nn.Module:
    """ResNet-50 for 224x224 images (torchvision's layout; ImageNet-LT, Places-LT)."""
    return ResNet50(num_classes, in_channels, head)


def load_init_weights(model: nn.Module, path, dataset: str = "") -> None:
    """Load backbone weights from a local file (weights_only); the classifier is left as
    initialised. Accepts torchvision keys (``conv1.weight``) or ours (``backbone.conv1...``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"init_weights {path} does not exist (give a local state_dict "
                                "file; nothing is downloaded)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("model", state) if isinstance(state, dict) else state
    backbone = {}
    for k, v in state.items():
        k = k.removeprefix("module.").removeprefix("backbone.")
        if not k.startswith(("fc.", "linear.")):
            backbone[k] = v
    missing, unexpected = model.backbone.load_state_dict(backbone, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise ValueError(f"init_weights {path} does not fit resnet50: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    if dataset == "imagenet_lt":
        warnings.warn("init_weights on ImageNet-LT: ImageNet-pretrained weights have seen the "
                      "full, balanced ImageNet labels, which leaks into ImageNet-LT results",
                      stacklevel=2)
