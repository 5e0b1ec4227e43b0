"""Model registry: ``@register_model(name)`` builders called as ``fn(num_classes, in_channels, head)``."""
from __future__ import annotations

from torch import nn

MODELS: dict = {}


def register_model(name: str):
    def deco(fn):
        if name in MODELS:
            raise ValueError(f"model '{name}' is registered twice")
        MODELS[name] = fn
        return fn
    return deco


def create_model(name: str, num_classes: int, *, in_channels: int = 3,
                 head: str = "linear") -> nn.Module:
    """Build model ``name``; its forward returns ``(logits, pooled_features)``."""
    if name not in MODELS:
        raise ValueError(f"unknown model '{name}'; choose one of {sorted(MODELS)}")
    if head not in ("linear", "cosine"):
        raise ValueError(f"head={head!r} is not valid; choose one of ['cosine', 'linear']")
    return MODELS[name](num_classes, in_channels=in_channels, head=head)
