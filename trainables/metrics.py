"""Accuracy metrics accumulated on the device and read once: top-k, per-class, shot groups.

Accuracies are percentages (as the paper's tables). Shot groups follow SPEC 7: many n > 100,
few n < 20, medium otherwise, from the TRAINING counts; an empty group is NaN, not 0.
"""
from __future__ import annotations

import math

import torch

MANY_SHOT, FEW_SHOT = 100, 20
TOPK = (1, 3, 5)


def shot_group_of(counts, many: int = MANY_SHOT, few: int = FEW_SHOT) -> list[str]:
    """'many' / 'medium' / 'few' for each class, from its training count."""
    return ["many" if n > many else "few" if n < few else "medium" for n in counts]


class TopKAccumulator:
    """Per-class hit counts for top-1/3/5, kept as device tensors (no host sync per batch)."""

    def __init__(self, num_classes: int, device):
        self.num_classes = num_classes
        self.ks = tuple(min(k, num_classes) for k in TOPK)
        self.hits = torch.zeros(len(TOPK), num_classes, dtype=torch.long, device=device)
        self.total = torch.zeros(num_classes, dtype=torch.long, device=device)

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        top = logits.topk(max(self.ks), dim=1).indices           # (N, kmax), sorted
        match = top == y[:, None]
        for i, k in enumerate(self.ks):
            hit = match[:, :k].any(dim=1).long()
            self.hits[i].index_add_(0, y, hit)
        self.total.index_add_(0, y, torch.ones_like(y))

    def summary(self, train_counts, prefix: str) -> dict:
        """Read once: overall top-k, per-class top-1 and many/medium/few mean class accuracy."""
        hits, total = self.hits.cpu(), self.total.cpu()
        out = {}
        n = int(total.sum())
        for i, k in enumerate(TOPK):
            out[f"{prefix}top{k}"] = 100.0 * int(hits[i].sum()) / max(n, 1)
        per_class = [100.0 * int(h) / int(t) if int(t) else math.nan
                     for h, t in zip(hits[0], total)]
        out[f"{prefix}per_class"] = per_class
        groups = shot_group_of(train_counts)
        for g in ("many", "medium", "few"):
            vals = [a for a, gg in zip(per_class, groups) if gg == g and not math.isnan(a)]
            out[f"{prefix}{g}"] = sum(vals) / len(vals) if vals else math.nan
        return out
