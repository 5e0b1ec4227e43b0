"""Loss registry and factory: ``@register_loss(name, head=..., **defaults)`` and ``create_loss``."""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn


@dataclass(frozen=True)
class LossSpec:
    name: str
    cls: type
    defaults: dict = field(default_factory=dict)   # every hyper-parameter the loss takes
    head: str = "linear"                           # classifier head the recipe pairs it with
    description: str = ""

    @property
    def takes_weight(self) -> bool:
        return bool(self.cls.takes_weight)

    @property
    def needs_features(self) -> bool:
        return bool(self.cls.needs_features)


LOSSES: dict[str, LossSpec] = {}


def register_loss(name: str, *, head: str = "linear", **defaults):
    """Class decorator adding a loss to ``LOSSES`` with its hyper-parameters' defaults."""
    def deco(cls):
        if name in LOSSES:
            raise ValueError(f"loss '{name}' is registered twice")
        LOSSES[name] = LossSpec(name, cls, dict(defaults), head, (cls.__doc__ or "").strip())
        return cls
    return deco


def create_loss(name: str, class_counts, *, weight=None, **hparams) -> nn.Module:
    """Build loss ``name`` for a training set with ``class_counts`` images per class.

    Hyper-parameters not given take the loss's defaults (``LOSSES[name].defaults``); unknown
    names and ones this loss does not take raise ValueError listing the valid ones.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss '{name}'; choose one of {sorted(LOSSES)}")
    spec = LOSSES[name]
    bad = sorted(set(hparams) - set(spec.defaults))
    if bad:
        raise ValueError(f"hyper-parameter(s) {bad} do not apply to loss '{name}'; it takes "
                         f"{sorted(spec.defaults) or 'none'}")
    return spec.cls(class_counts, weight=weight, **{**spec.defaults, **hparams})
