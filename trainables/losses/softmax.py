"""Softmax-family baselines: CE, Focal (LDAM-DRW's form), LMSCE (Kobayashi 2019)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from trainables.losses.base import ClassLoss, as_float, target_mask
from trainables.losses.registry import register_loss


def focal_from_ce(ce: torch.Tensor, gamma: float) -> torch.Tensor:
    """(1 − p)^γ · ℓ with p = exp(−ℓ), on per-sample (already weighted) CE values ℓ."""
    return (1.0 - torch.exp(-ce)) ** gamma * ce


@register_loss("ce")
class CrossEntropy(ClassLoss):
    """Softmax cross-entropy, CE(z, y; w) (weighted mean when w is set)."""

    def forward(self, logits, targets, features=None):
        z = as_float(logits)
        return F.cross_entropy(z, targets, weight=self._w(z))


@register_loss("focal", gamma=1.0)
class Focal(ClassLoss):
    """Focal loss as LDAM-DRW: mean_i (1 − e^{−ℓ_i})^γ ℓ_i with ℓ_i = w_{y_i}·CE_i (plain mean)."""

    def __init__(self, class_counts, weight=None, *, gamma):
        super().__init__(class_counts, weight)
        self.gamma = float(gamma)

    def forward(self, logits, targets, features=None):
        z = as_float(logits)
        ce = F.cross_entropy(z, targets, weight=self._w(z), reduction="none")
        return focal_from_ce(ce, self.gamma).mean()


@register_loss("lmsce", reg_lambda=0.3)
class LMSCE(ClassLoss):
    """Large-margin softmax CE: CE + λ_reg · mean_i ½ Σ_{j≠y} (p̃_ij − 1/(C−1)) log p̃_ij, with p̃
    the softmax over the non-target logits. The regulariser is unweighted even when w is set."""

    def __init__(self, class_counts, weight=None, *, reg_lambda):
        super().__init__(class_counts, weight)
        self.reg_lambda = float(reg_lambda)

    def forward(self, logits, targets, features=None):
        z = as_float(logits)
        ce = F.cross_entropy(z, targets, weight=self._w(z))
        onehot = target_mask(z, targets)
        x = z - 1e6 * onehot.to(z.dtype)        # as Kobayashi's code: push the target out
        p, logp = F.softmax(x, dim=1), F.log_softmax(x, dim=1)
        c = z.shape[1]
        reg = 0.5 * ((p - 1.0 / (c - 1)) * logp).masked_fill(onehot, 0.0).sum(dim=1)
        return ce + self.reg_lambda * reg.mean()
