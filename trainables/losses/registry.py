"""Loss registry and factory: ``@register_loss(name, head=..., **defaults)`` and ``create_loss``.

A loss's registered defaults are the one table of the hyper-parameters it takes:
``takes_hparam(loss, k)`` is the one rule every caller asks (TrialConfig's checks, the study
files, the grid expansion), ``losses_taking(k)`` its inverse.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from trainables.registry import Registry


@dataclass(frozen=True)
class LossSpec:
    name: str
    cls: type
    defaults: dict = field(default_factory=dict)   # every hyper-parameter the loss takes
    head: str = "linear"                           # classifier head the recipe pairs it with
    description: str = ""                          # the class's docstring

    @property
    def takes_weight(self) -> bool:
        return bool(self.cls.takes_weight)

    def takes(self, hparam: str) -> bool:
        """Whether this loss takes hyper-parameter ``hparam`` (its defaults name every one)."""
        return hparam in self.defaults


LOSSES: Registry = Registry("loss")


def list_losses(filter: str = "") -> list[str]:
    """Registered loss names, sorted; ``filter`` is a wildcard such as ``"elm*"``."""
    return LOSSES.names(filter)


def describe_loss(name: str) -> str:
    """One line saying what loss ``name`` computes (its docstring's first paragraph)."""
    return LOSSES.describe(name)


def takes_hparam(loss: str, hparam: str) -> bool:
    """Whether loss ``loss`` takes hyper-parameter ``hparam``: THE rule (a TrialConfig field set
    for a loss that does not take it is an error; a study's axis over it multiplies only the
    methods whose loss takes it). An unknown loss is a ValueError listing the valid ones."""
    return LOSSES.get_spec(loss).takes(hparam)


def losses_taking(hparam: str) -> list[str]:
    """The registered losses that take hyper-parameter ``hparam``, sorted."""
    return sorted(n for n, spec in LOSSES.items() if spec.takes(hparam))


def register_loss(name: str, *, head: str = "linear", **defaults):
    """Class decorator adding a loss to ``LOSSES`` with its hyper-parameters' defaults."""
    def deco(cls):
        LOSSES.add(LossSpec(name, cls, dict(defaults), head, (cls.__doc__ or "").strip()))
        return cls
    return deco


def create_loss(name: str, class_counts, *, weight=None, **hparams) -> nn.Module:
    """Build loss ``name`` for a training set with ``class_counts`` images per class.

    Hyper-parameters not given take the loss's defaults (``LOSSES[name].defaults``); unknown
    names and ones this loss does not take raise ValueError listing the valid ones.
    """
    spec = LOSSES.get_spec(name)
    bad = sorted(k for k in hparams if not spec.takes(k))
    if bad:
        raise ValueError(f"hyper-parameter(s) {bad} do not apply to loss '{name}'; it takes "
                         f"{sorted(spec.defaults) or 'none'}")
    return spec.cls(class_counts, weight=weight, **{**spec.defaults, **hparams})
