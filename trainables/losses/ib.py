"""Influence-balanced losses (Park et al. 2021): IB and IB-Focal."""
from __future__ import annotations

import torch.nn.functional as F

from trainables.losses.base import ClassLoss, as_float
from trainables.losses.registry import register_loss
from trainables.losses.softmax import focal_from_ce
from trainables.losses.weights import ib_weights


class _IBBase(ClassLoss):
    """Plain unweighted CE before ``ib_start_epoch``; from it on, per-sample CE_i·w_{y_i}
    scaled by ib_i = α / (‖softmax(z_i) − t_i‖₁ · ‖h_i‖₁ + ε). ib is NOT detached (as the code)."""

    takes_weight = False   # IB re-weights with its own w_j ∝ 1/n_j

    def __init__(self, class_counts, weight=None, *, alpha, eps, ib_start_epoch):
        super().__init__(class_counts, weight)
        self.alpha, self.eps, self.ib_start_epoch = float(alpha), float(eps), int(ib_start_epoch)
        self.register_buffer("ib_w", ib_weights(self.counts), persistent=False)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def active(self) -> bool:
        return self.epoch >= self.ib_start_epoch

    def _check_features(self, features):
        # checked at every call, also before ib_start_epoch, so a set-up that never passes
        # features fails at the first step rather than 100 epochs in
        if features is None:
            raise ValueError(f"{type(self).__name__} needs features: an (N, D) tensor of pooled "
                             "features (the model's penultimate output); got None")

    def _ib_terms(self, logits, targets, features):
        z = as_float(logits)
        h = as_float(features)
        if h.dim() != 2 or h.shape[0] != z.shape[0]:
            raise ValueError(f"features must be (N, D) with N={z.shape[0]}, got {tuple(h.shape)}")
        grads = (F.softmax(z, dim=1) - F.one_hot(targets, z.shape[1]).to(z.dtype)).abs().sum(1)
        ib = self.alpha / (grads * h.abs().sum(1) + self.eps)
        ce = F.cross_entropy(z, targets, weight=self.ib_w.to(z.dtype), reduction="none")
        return ce, ib


@register_loss("ib", alpha=1000.0, eps=1e-3, ib_start_epoch=100)
class IB(_IBBase):
    """IB: mean_i w_{y_i} CE_i · ib_i (after ib_start_epoch; plain CE before)."""

    def forward(self, logits, targets, features=None):
        self._check_features(features)
        if not self.active:
            return F.cross_entropy(as_float(logits), targets)
        ce, ib = self._ib_terms(logits, targets, features)
        return (ce * ib).mean()


@register_loss("ib_focal", alpha=1000.0, eps=1e-3, gamma=1.0, ib_start_epoch=100)
class IBFocal(_IBBase):
    """IB-Focal: mean_i (1 − e^{−w CE_i})^γ · w CE_i · ib_i (after ib_start_epoch)."""

    def __init__(self, class_counts, weight=None, *, alpha, eps, gamma, ib_start_epoch):
        super().__init__(class_counts, weight, alpha=alpha, eps=eps, ib_start_epoch=ib_start_epoch)
        self.gamma = float(gamma)

    def forward(self, logits, targets, features=None):
        self._check_features(features)
        if not self.active:
            return F.cross_entropy(as_float(logits), targets)
        ce, ib = self._ib_terms(logits, targets, features)
        return (focal_from_ce(ce, self.gamma) * ib).mean()
