"""Per-class quantities derived from class counts: LDAM margins and re-weighting vectors.

All are computed in float64 (docs/losses.md, docs/recipe.md) and returned as float64 tensors;
losses cast them to the logits' dtype and device when they use them.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


def as_counts(counts: Sequence[int] | torch.Tensor) -> torch.Tensor:
    c = torch.as_tensor(counts, dtype=torch.float64).flatten()
    if c.numel() == 0 or bool((c <= 0).any()):
        raise ValueError(f"class_counts must be positive, got {c.tolist()}")
    return c


def log_prior(counts) -> torch.Tensor:
    """log π_j = log n_j − log Σ_k n_k, the log of the training class prior (logit adjustment
    in training, trainables.losses.logit_adjust, and post hoc, analysis.posthoc)."""
    c = as_counts(counts)
    return c.log() - c.sum().log()


def class_margins(counts, max_m: float) -> torch.Tensor:
    """LDAM margins Δ_j = max_m · (n_min / n_j)^(1/4): the rarest class gets exactly max_m."""
    inv = as_counts(counts) ** -0.25
    return inv * (max_m / inv.max())


def class_balanced_weights(counts, beta: float) -> torch.Tensor:
    """Cui et al.'s effective-number weights (1-β)/(1-β^n_j), normalised to sum to C.

    β = 0 gives all ones."""
    c = as_counts(counts)
    w = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), c))
    return w / w.sum() * c.numel()


def drw_weights(counts, epoch: int, drw_epoch: int, beta: float = 0.9999) -> torch.Tensor:
    """Deferred re-weighting: all ones before ``drw_epoch`` (0-based), CB weights from it on."""
    return class_balanced_weights(counts, 0.0 if epoch < drw_epoch else beta)


def ib_weights(counts) -> torch.Tensor:
    """Influence-balanced class weights w_j = (1/n_j) / Σ_k (1/n_k) · C (Park et al.)."""
    inv = 1.0 / as_counts(counts)
    return inv / inv.sum() * inv.numel()
