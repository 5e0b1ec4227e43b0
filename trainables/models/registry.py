"""Model registry: ``@register_model(name)`` builders, called as ``fn(num_classes, *, in_channels,
head)``."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from trainables.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., nn.Module]
    description: str = ""          # the builder's docstring


MODELS: Registry = Registry("model")


def register_model(name: str):
    def deco(fn):
        MODELS.add(ModelSpec(name, fn, (fn.__doc__ or "").strip()))
        return fn
    return deco


def list_models(filter: str = "") -> list[str]:
    """Registered model names, sorted; ``filter`` is a wildcard such as ``"resnet*"``."""
    return MODELS.names(filter)


def describe_model(name: str) -> str:
    return MODELS.describe(name)


def create_model(name: str, num_classes: int, *, in_channels: int = 3,
                 head: str = "linear") -> nn.Module:
    """Build model ``name``; its forward returns ``(logits, pooled_features)``."""
    spec = MODELS.get_spec(name)
    if head not in ("linear", "cosine"):
        raise ValueError(f"head={head!r} is not valid; choose one of ['cosine', 'linear']")
    return spec.builder(num_classes, in_channels=in_channels, head=head)
