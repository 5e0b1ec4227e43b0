"""Margin losses on a cosine head: LDAM (Cao et al.), ELM (Kato & Hotta), ELM w/o Δy, MM-LDAM.

All subtract a per-sample quantity from the target logit only and return CE(s·o, y; w).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from trainables.losses.base import ClassLoss, as_float, target_mask
from trainables.losses.registry import register_loss
from trainables.losses.weights import class_margins


class _MarginBase(ClassLoss):
    def __init__(self, class_counts, weight=None, *, s, max_m):
        super().__init__(class_counts, weight)   # s > 0 is TrialConfig's check (config.py)
        self.s, self.max_m = float(s), float(max_m)
        self.register_buffer("margins", class_margins(self.counts, self.max_m), persistent=False)

    def _ce(self, z, targets, target_shift):
        """CE(s·o, y; w) where o = z except o_{i,y_i} = z_{i,y_i} + target_shift_i."""
        onehot = target_mask(z, targets)
        o = torch.where(onehot, z + target_shift[:, None], z)
        return F.cross_entropy(self.s * o, targets, weight=self._w(z))


def hardest_negative(z: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """c*_i = argmax_{j≠y_i} z_ij on the raw logits (target masked to −1e8); first index wins
    ties (torch.argmax's documented rule); no gradient flows through the choice."""
    with torch.no_grad():
        masked = z.detach().masked_fill(target_mask(z, targets), -1e8)
        return masked.argmax(dim=1)


@register_loss("ldam", head="cosine", s=30.0, max_m=0.5)
class LDAM(_MarginBase):
    """LDAM: o_y = z_y − Δ_y; L = CE(s·o, y; w)."""

    def forward(self, logits, targets, features=None):
        z = as_float(logits)
        return self._ce(z, targets, -self.margins.to(z.dtype)[targets])


@register_loss("elm", head="cosine", s=30.0, max_m=0.5, lam=1.0)
class ELM(_MarginBase):
    """ELM: o_y = z_y − Δ_y + λ·Δ_{c*}, c* the hardest non-target class. λ = 0 is LDAM.

    The sign follows the authors' code and Eq. 6/7 (docs/losses.md): λΔ_{c*} is ADDED to z_y.
    """

    def __init__(self, class_counts, weight=None, *, s, max_m, lam):
        super().__init__(class_counts, weight, s=s, max_m=max_m)
        self.lam = float(lam)

    def forward(self, logits, targets, features=None):
        z = as_float(logits)
        m = self.margins.to(z.dtype)
        return self._ce(z, targets, -m[targets] + self.lam * m[hardest_negative(z, targets)])


@register_loss("elm_wo_dy", head="cosine", s=30.0, max_m=0.5, lam=1.0)
class ELMWithoutDeltaY(ELM):
    """Ablation "ELM w/o Δy": o_y = z_y + λ·Δ_{c*}."""

    def forward(self, logits, targets, features=None):
        z = as_float(logits)
        m = self.margins.to(z.dtype)
        return self._ce(z, targets, self.lam * m[hardest_negative(z, targets)])


@register_loss("mm_ldam", head="cosine", s=19.0, max_m=1.29, gamma=1.528, ldam=False,
               faithful=False)
class MMLDAM(_MarginBase):
    """Maximum-margin LDAM (Kang et al. 2021): o_y = z_y − b_i with, under no_grad,
    fg = max(z_y − max_{j≠y} z_j, 0), bg = max(−that, 0),
    b = e^{−fg − M_i γ}[fg>0] + e^{−bg − M_i}[bg>0], M_i = max_m − Δ_y (ldam) or max_m.
    Δ here always uses M = 0.5, as the authors' code. ``faithful=True`` reproduces the public
    code's two slips: every row reads the FIRST sample's target column as its positive, and the
    negative max zeroes (not −inf) the row's own target slot."""

    def __init__(self, class_counts, weight=None, *, s, max_m, gamma, ldam, faithful):
        super().__init__(class_counts, weight, s=s, max_m=0.5)
        self.max_m, self.gamma = float(max_m), float(gamma)
        self.ldam, self.faithful = bool(ldam), bool(faithful)

    def shift(self, z: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """−b_i, the per-sample change of the target logit (no gradient)."""
        with torch.no_grad():
            z = z.detach()
            onehot = target_mask(z, targets)
            m_i = (self.max_m - self.margins.to(z.dtype)[targets]) if self.ldam else \
                torch.full_like(z[:, 0], self.max_m)
            if self.faithful:
                # column targets[0] for every row, chosen on the device: z[:, targets[0]]
                # reads the 0-dim index to the host (.item(), a CUDA sync every step)
                pos = z.index_select(1, targets[:1])[:, 0]
                neg = (z * (~onehot).to(z.dtype)).max(dim=1).values
            else:
                pos = z.gather(1, targets[:, None])[:, 0]
                neg = z.masked_fill(onehot, float("-inf")).max(dim=1).values
            fg, bg = (pos - neg).clamp_min(0), (neg - pos).clamp_min(0)
            b = torch.exp(-fg - m_i * self.gamma) * (fg > 0) + torch.exp(-bg - m_i) * (bg > 0)
            return -b

    def forward(self, logits, targets, features=None):
        z = as_float(logits)
        return self._ce(z, targets, self.shift(z, targets))
