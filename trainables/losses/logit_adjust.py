"""Prior-shifted softmax losses: logit adjustment (Menon et al., ICLR 2021) and Balanced Softmax
(Ren et al., NeurIPS 2020).

Both add a per-class constant to every logit before the softmax cross-entropy; the constant
comes from the TRAINING class counts n_j (π_j = n_j / Σ_k n_k):

    logit_adjust:      L = CE(z + τ·log π, y; w)
    balanced_softmax:  L = CE(z + log n, y; w)

log n = log π + log Σn, and a shift common to every logit cancels in the softmax, so Balanced
Softmax is logit adjustment with τ = 1. Both take the DRW weight w like CE does.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from trainables.losses.base import ClassLoss, as_float
from trainables.losses.registry import register_loss


def log_prior(counts: torch.Tensor) -> torch.Tensor:
    """log π_j = log n_j − log Σ_k n_k, in float64 (the counts are exact integers)."""
    c = counts.to(torch.float64)
    return c.log() - c.sum().log()


@register_loss("logit_adjust", tau=1.0)
class LogitAdjust(ClassLoss):
    """Logit-adjusted CE: CE(z + τ·log π, y; w), π the training class prior."""

    def __init__(self, class_counts, weight=None, *, tau):
        super().__init__(class_counts, weight)
        if not math.isfinite(float(tau)) or float(tau) < 0:
            raise ValueError(f"tau={tau!r} is out of range: must be >= 0")
        self.tau = float(tau)
        self.register_buffer("shift", self.tau * log_prior(self.counts), persistent=False)

    def forward(self, logits, targets, features=None):
        z = as_float(logits)
        return F.cross_entropy(z + self.shift.to(device=z.device, dtype=z.dtype), targets,
                               weight=self._w(z))


@register_loss("balanced_softmax")
class BalancedSoftmax(ClassLoss):
    """Balanced Softmax: CE(z + log n, y; w), n the training class counts."""

    def __init__(self, class_counts, weight=None):
        super().__init__(class_counts, weight)
        self.register_buffer("shift", self.counts.to(torch.float64).log(), persistent=False)

    def forward(self, logits, targets, features=None):
        z = as_float(logits)
        return F.cross_entropy(z + self.shift.to(device=z.device, dtype=z.dtype), targets,
                               weight=self._w(z))
