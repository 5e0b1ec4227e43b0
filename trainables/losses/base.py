"""The shared shape of every loss module: class counts in, ``loss(logits, targets, features)``."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainables.losses.weights import as_counts


class ClassLoss(nn.Module):
    """Base: holds the class counts and the optional per-class weight ``w`` (DRW).

    ``weight`` is a non-persistent buffer: the engine recomputes it from the epoch on resume,
    so checkpoints stay loadable whether or not DRW had started.
    """

    takes_weight = True      # False for losses whose re-weighting is their own (EQLv2, IB)

    def __init__(self, class_counts, weight=None):
        super().__init__()
        self.register_buffer("counts", as_counts(class_counts), persistent=False)
        self.num_classes = int(self.counts.numel())
        self.register_buffer("weight", None, persistent=False)
        self.set_weight(weight)

    def set_weight(self, weight) -> None:
        """Set (or clear, with None) the per-class weight w used as CE(z, y; w)."""
        if weight is None:
            self.weight = None
            return
        if not self.takes_weight:
            raise ValueError(f"loss '{type(self).__name__}' does not take class weights")
        w = torch.as_tensor(weight, dtype=torch.float64).flatten()
        if w.numel() != self.num_classes:
            raise ValueError(f"weight has {w.numel()} entries, expected {self.num_classes}")
        self.weight = w.to(self.counts.device)

    def set_epoch(self, epoch: int) -> None:
        """Called by the engine at the start of each (0-based) epoch; most losses ignore it."""

    def _w(self, z: torch.Tensor) -> torch.Tensor | None:
        return None if self.weight is None else self.weight.to(device=z.device, dtype=z.dtype)

    def forward(self, logits, targets, features=None):  # pragma: no cover - abstract
        raise NotImplementedError


def as_float(z: torch.Tensor) -> torch.Tensor:
    """Losses are computed in at least float32: bf16/fp16 logits (autocast) are up-cast, since
    s·(z − Δ) with s = 30 and margins ~0.2 would lose most of Δ in bf16."""
    return z.float() if z.dtype in (torch.float16, torch.bfloat16) else z


def target_mask(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Boolean one-hot of the targets, shaped like the logits."""
    return F.one_hot(y, z.shape[1]).bool()
