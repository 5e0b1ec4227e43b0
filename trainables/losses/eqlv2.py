"""Equalization loss v2 (Tan et al. 2021), adapted from detection to classification."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from trainables.losses.base import ClassLoss, as_float
from trainables.losses.registry import register_loss


@register_loss("eqlv2", gamma=12.0, mu=0.8, alpha=4.0)
class EQLv2(ClassLoss):
    """Sigmoid BCE per class, weighted by the accumulated positive/negative gradient ratio.

    neg_w = σ(γ(pos_neg − μ)), pos_w = 1 + α(1 − neg_w), L = Σ W·BCE / N. The running
    statistics are buffers (saved in checkpoints) updated after the loss, in training mode only.
    """

    takes_weight = False
    # Data parallelism: the accumulated gradients are global state (every worker must weight
    # its next step alike), so each step's increments are summed over workers with this
    # in-place all-reduce (set by the engine; None in a single process).
    all_reduce = None

    def __init__(self, class_counts, weight=None, *, gamma, mu, alpha):
        super().__init__(class_counts, weight)
        self.gamma, self.mu, self.alpha = float(gamma), float(mu), float(alpha)
        c = self.num_classes
        self.register_buffer("pos_grad", torch.zeros(c, dtype=torch.float64))
        self.register_buffer("neg_grad", torch.zeros(c, dtype=torch.float64))
        self.register_buffer("pos_neg", torch.full((c,), 100.0, dtype=torch.float64))

    def forward(self, logits, targets, features=None):
        z = as_float(logits)
        t = F.one_hot(targets, z.shape[1]).to(z.dtype)
        neg_w = torch.sigmoid(self.gamma * (self.pos_neg - self.mu)).to(z.dtype)
        pos_w = 1.0 + self.alpha * (1.0 - neg_w)
        w = pos_w * t + neg_w * (1.0 - t)
        loss = (w * F.binary_cross_entropy_with_logits(z, t, reduction="none")).sum() / z.shape[0]
        if self.training:
            self._collect(z.detach(), t, w.detach())
        return loss

    @torch.no_grad()
    def _collect(self, z, t, w):
        g = (torch.sigmoid(z) - t).abs()
        step = torch.stack([(g * t * w).sum(0), (g * (1 - t) * w).sum(0)]).to(self.pos_grad.dtype)
        if self.all_reduce is not None:
            self.all_reduce(step)
        self.pos_grad += step[0]
        self.neg_grad += step[1]
        self.pos_neg.copy_(self.pos_grad / (self.neg_grad + 1e-10))
