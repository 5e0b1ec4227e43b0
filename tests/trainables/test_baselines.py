"""Logit adjustment and Balanced Softmax against float64 references written from the formulas
(Menon et al. 2021 eq. 10; Ren et al. 2020 eq. 4), with the counts test_losses.py uses."""
from __future__ import annotations

import math

import pytest
import torch

from trainables.config import TrialConfig
from trainables.losses import LOSSES, create_loss, drw_weights
from trainables.methods import method_label

F64 = torch.float64
C10 = [int(5000 * (1 / 100) ** (i / 9)) for i in range(10)]       # CIFAR-10-LT, r = 100
C100 = [int(500 * (1 / 10) ** (i / 99)) for i in range(100)]       # CIFAR-100-LT, r = 10
COUNTS = {"c10_r100": C10, "c100_r10": C100}


def r_lse(o):
    m = o.detach().max(dim=1, keepdim=True).values
    return (m + (o - m).exp().sum(dim=1, keepdim=True).log()).squeeze(1)


def r_shifted_ce(z, y, shift, w=None):
    """mean_i −log softmax(z_i + shift)_{y_i}; with w: Σ w_y ℓ / Σ w_y (torch's weighted mean)."""
    o = z + torch.tensor(shift, dtype=F64)[None, :]
    ell = r_lse(o) - o[torch.arange(len(y)), y]
    if w is None:
        return ell.mean()
    wy = torch.as_tensor(w, dtype=F64)[y]
    return (wy * ell).sum() / wy.sum()


def r_la(z, y, counts, tau=1.0, w=None):
    total = sum(counts)
    return r_shifted_ce(z, y, [tau * math.log(n / total) for n in counts], w)


def r_bs(z, y, counts, w=None):
    return r_shifted_ce(z, y, [math.log(n) for n in counts], w)


def batch(counts, n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, len(counts), generator=g, dtype=F64) * 2
    return z, torch.randint(0, len(counts), (n,), generator=g)


def value_and_grad(fn, z, dtype=F64):
    zz = z.detach().to(dtype).requires_grad_(True)
    v = fn(zz)
    v.backward()
    return v.detach().to(F64), zz.grad.to(F64)


TOL = {F64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=1e-4, atol=1e-5)}


@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("weighted", [False, True], ids=["w_none", "w_drw"])
@pytest.mark.parametrize("counts_id", list(COUNTS))
@pytest.mark.parametrize("name,tau", [("logit_adjust", None), ("logit_adjust", 0.5),
                                      ("logit_adjust", 2.0), ("balanced_softmax", None)])
def test_value_and_gradient_match_reference(name, tau, counts_id, weighted, dtype):
    counts = COUNTS[counts_id]
    z, y = batch(counts, seed=1)
    w = drw_weights(counts, 160, 160) if weighted else None
    hp = {} if tau is None else {"tau": tau}
    loss = create_loss(name, counts, weight=w, **hp)
    got_v, got_g = value_and_grad(lambda t: loss(t, y), z, dtype)
    if name == "logit_adjust":
        ref = lambda t: r_la(t, y, counts, 1.0 if tau is None else tau, w)   # noqa: E731
    else:
        ref = lambda t: r_bs(t, y, counts, w)                                 # noqa: E731
    ref_v, ref_g = value_and_grad(ref, z.to(dtype).to(F64))
    assert got_v.dtype == F64
    torch.testing.assert_close(got_v, ref_v, **TOL[dtype])
    torch.testing.assert_close(got_g, ref_g, rtol=TOL[dtype]["rtol"] * 10,
                               atol=TOL[dtype]["atol"] * ref_g.abs().max().item())


@pytest.mark.parametrize("counts_id", list(COUNTS))
@pytest.mark.parametrize("weighted", [False, True])
def test_balanced_softmax_equals_logit_adjust_tau_one(counts_id, weighted):
    counts = COUNTS[counts_id]
    z, y = batch(counts, seed=2)
    w = drw_weights(counts, 160, 160) if weighted else None
    la = value_and_grad(lambda t: create_loss("logit_adjust", counts, weight=w)(t, y), z)
    bs = value_and_grad(lambda t: create_loss("balanced_softmax", counts, weight=w)(t, y), z)
    torch.testing.assert_close(bs[0], la[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(bs[1], la[1], rtol=1e-12, atol=1e-14)
    # and τ = 0 is plain CE: the shift is what makes it differ
    ce = create_loss("ce", counts, weight=w)(z, y)
    la0 = create_loss("logit_adjust", counts, weight=w, tau=0.0)(z, y)
    torch.testing.assert_close(la0, ce, rtol=1e-12, atol=0)
    assert not torch.isclose(la[0], ce)


def test_registry_config_and_labels():
    assert LOSSES["logit_adjust"].head == "linear" and LOSSES["logit_adjust"].defaults == {
        "tau": 1.0}
    assert LOSSES["balanced_softmax"].head == "linear"
    assert LOSSES["balanced_softmax"].defaults == {}
    assert LOSSES["logit_adjust"].takes_weight and LOSSES["balanced_softmax"].takes_weight
    cfg = TrialConfig(loss="logit_adjust", tau=0.5, drw=True)
    assert cfg.loss_hparams() == {"tau": 0.5} and cfg.resolved_head() == "linear"
    assert TrialConfig(loss="logit_adjust").loss_hparams() == {"tau": 1.0}
    with pytest.raises(ValueError, match="tau does not apply to loss 'balanced_softmax'"):
        TrialConfig(loss="balanced_softmax", tau=1.0)
    with pytest.raises(ValueError, match="tau=-1.0 is out of range"):
        TrialConfig(loss="logit_adjust", tau=-1.0)
    assert method_label("logit_adjust", True) == "LA + DRW"
    assert method_label("balanced_softmax") == "Balanced Softmax"
