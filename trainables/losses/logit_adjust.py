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
from trainables.losses.weights import log_prior


@register_loss("logit_adjust", tau=1.0)
class LogitAdjust(ClassLoss):
    """Logit-adjusted CE: CE(z + τ·log π, y; w), π the training class prior."""

    def __init__(self, class_counts, weight=None, *, tau):
        super().__init__(class_counts, weight)
        if not math.isfinite(float(tau)) or float(tau) < 0:
            raise ValueError(f"tau={tau!r} is out of range: must be >= 0")
        self.tau = float(tau)
        self.register_buffer("shift", self.prior_shift(), persistent=False)

    def prior_shift(self) -> torch.Tensor:
        """The per-class constant added to every logit: τ·log π (float64)."""
        return self.tau * log_prior(self.counts)

    def forward(self, logits, targets, features=None):
        z = as_float(logits)
        return F.cross_entropy(z + self.shift.to(device=z.device, dtype=z.dtype), targets,
                               weight=self._w(z))


@register_loss("balanced_softmax")
class BalancedSoftmax(LogitAdjust):
    """Balanced Softmax: CE(z + log n, y; w), n the training class counts: logit_adjust with
    τ = 1 (no hyper-parameter)."""

    def __init__(self, class_counts, weight=None):
        super().__init__(class_counts, weight, tau=1.0)

    def prior_shift(self) -> torch.Tensor:
        # log n as Ren et al. write it: τ·log π + log Σn, the same loss (the constant cancels
        # in the softmax); kept so that Balanced Softmax's numbers stay those it always had
        return self.counts.log()
