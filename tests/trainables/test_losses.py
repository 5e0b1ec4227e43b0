"""Loss functions against independent float64 references written from docs/losses.md.

Nothing here is shared with ``trainables.losses``: every reference below is rebuilt from the
documented formulas (log-sum-exp, softmax, sigmoid and BCE written out by hand, c* and the MM-LDAM
shift computed by plain Python loops), and gradients are those of the references under
autograd, with the quantities the docs say carry no gradient (ELM's c*, MM-LDAM's shift b,
EQLv2's weights) held constant.
"""
from __future__ import annotations

import math
import re

import pytest
import torch

from trainables.losses import (
    LOSSES,
    class_balanced_weights,
    class_margins,
    create_loss,
    drw_weights,
    ib_weights,
)

F64 = torch.float64
C10 = [int(5000 * (1 / 100) ** (i / 9)) for i in range(10)]       # CIFAR-10-LT, r = 100
C100 = [int(500 * (1 / 10) ** (i / 99)) for i in range(100)]       # CIFAR-100-LT, r = 10
COUNTS = {"c10_r100": C10, "c100_r10": C100}

SPEC_MARGINS_C10 = [0.158114, 0.179697, 0.204238, 0.232091, 0.263829, 0.299768, 0.340675,
                    0.387221, 0.440497, 0.5]
SPEC_DRW_C10 = [0.0506, 0.0769, 0.1211, 0.1950, 0.3188, 0.5246, 0.8684, 1.4426, 2.4092, 3.9927]

ALL = ["ce", "focal", "lmsce", "eqlv2", "ib", "ib_focal", "ldam", "elm", "elm_wo_dy", "mm_ldam"]
COSINE = {"ldam", "elm", "elm_wo_dy", "mm_ldam"}
WEIGHTED = ["ce", "focal", "lmsce", "ldam", "elm", "elm_wo_dy", "mm_ldam"]   # take DRW's w
IB = ["ib", "ib_focal"]
DEFAULTS = {
    "ce": {},
    "focal": {"gamma": 1.0},
    "lmsce": {"reg_lambda": 0.3},
    "eqlv2": {"gamma": 12.0, "mu": 0.8, "alpha": 4.0},
    "ib": {"alpha": 1000.0, "eps": 1e-3, "ib_start_epoch": 100},
    "ib_focal": {"alpha": 1000.0, "eps": 1e-3, "ib_start_epoch": 100, "gamma": 1.0},
    "ldam": {"s": 30.0, "max_m": 0.5},
    "elm": {"s": 30.0, "max_m": 0.5, "lam": 1.0},
    "elm_wo_dy": {"s": 30.0, "max_m": 0.5, "lam": 1.0},
    "mm_ldam": {"s": 19.0, "max_m": 1.29, "gamma": 1.528, "ldam": False, "faithful": False},
}


# =========================================================================================
# float64 references, straight from docs/losses.md
# =========================================================================================
def r_margins(counts, max_m):
    """docs/losses.md: Δ_j = M · (n_min / n_j)^{1/4}."""
    n_min = min(counts)
    return torch.tensor([max_m * (n_min / n) ** 0.25 for n in counts], dtype=F64)


def r_cb_weights(counts, beta):
    """docs/recipe.md (DRW): w_j = (1 − β)/(1 − β^{n_j}), normalised to sum C."""
    w = [(1 - beta) / (1 - beta ** n) for n in counts]
    return torch.tensor([v * len(counts) / sum(w) for v in w], dtype=F64)


def r_ib_weights(counts):
    inv = [1.0 / n for n in counts]
    return torch.tensor([v / sum(inv) * len(counts) for v in inv], dtype=F64)


def onehot(y, c):
    t = torch.zeros(len(y), c, dtype=F64)
    t[torch.arange(len(y)), y] = 1.0
    return t


def lse(o):
    m = o.detach().max(dim=1, keepdim=True).values
    return (m + (o - m).exp().sum(dim=1, keepdim=True).log()).squeeze(1)


def nll(o, y):
    """−log softmax(o)_y per row."""
    return lse(o) - o[torch.arange(len(y)), y]


def wmean(per_sample, y, w):
    """CE(·, y; w)'s reduction: plain mean without w, Σ w_y ℓ / Σ w_y with it."""
    if w is None:
        return per_sample.mean()
    wy = w.to(F64)[y]
    return (wy * per_sample).sum() / wy.sum()


def r_ce(z, y, w=None):
    return wmean(nll(z, y), y, w)


def r_focal(z, y, w=None, gamma=1.0):
    ell = nll(z, y) * (1.0 if w is None else w.to(F64)[y])
    return ((1 - torch.exp(-ell)) ** gamma * ell).mean()


def r_lmsce(z, y, w=None, reg_lambda=0.3):
    n, c = z.shape
    keep = onehot(y, c) == 0
    zo = z[keep].view(n, c - 1)                       # the non-target logits only
    lp = zo - lse(zo)[:, None]                        # log p̃
    reg = 0.5 * ((lp.exp() - 1.0 / (c - 1)) * lp).sum(dim=1)
    return r_ce(z, y, w) + reg_lambda * reg.mean()


def r_cstar(z, y):
    """argmax over j ≠ y of the raw logits; ties to the lowest index (Python loop)."""
    out = []
    for row, t in zip(z.detach().tolist(), y.tolist(), strict=True):
        best = None
        for j, v in enumerate(row):
            if j != t and (best is None or v > row[best]):
                best = j
        out.append(best)
    return torch.tensor(out)


def r_shifted_ce(z, y, shift, s, w=None):
    """o = z except o_{i,y_i} = z_{i,y_i} + shift_i (shift constant); CE(s·o, y; w)."""
    o = z + onehot(y, z.shape[1]) * shift.to(F64)[:, None]
    return wmean(nll(s * o, y), y, w)


def r_ldam(z, y, counts, w=None, s=30.0, max_m=0.5):
    d = r_margins(counts, max_m)
    return r_shifted_ce(z, y, -d[y], s, w)


def r_elm(z, y, counts, w=None, s=30.0, max_m=0.5, lam=1.0, with_dy=True):
    d = r_margins(counts, max_m)
    cs = r_cstar(z, y)
    shift = lam * d[cs] - (d[y] if with_dy else 0.0)
    return r_shifted_ce(z, y, shift, s, w)


def r_mm_b(z, y, counts, max_m, gamma, ldam, faithful):
    """MM-LDAM's b_i (no gradient). ``faithful``: the public code's slips (docs/losses.md): every
    row reads the FIRST sample's target column for mpos, and the non-target max puts 0 (not
    −inf) in the row's target slot."""
    d = r_margins(counts, 0.5).tolist()               # always M = 0.5 here
    rows, ys = z.detach().tolist(), y.tolist()
    b = []
    for row, t in zip(rows, ys, strict=True):
        m_i = max_m - d[t] if ldam else max_m
        if faithful:
            mpos = row[ys[0]]
            mneg = max(0.0 if j == t else v for j, v in enumerate(row))
        else:
            mpos = row[t]
            mneg = max(v for j, v in enumerate(row) if j != t)
        fg, bg = max(mpos - mneg, 0.0), max(mneg - mpos, 0.0)
        b.append((math.exp(-fg - m_i * gamma) if fg > 0 else 0.0)
                 + (math.exp(-bg - m_i) if bg > 0 else 0.0))
    return torch.tensor(b, dtype=F64)


def r_mm(z, y, counts, w=None, s=19.0, max_m=1.29, gamma=1.528, ldam=False, faithful=False):
    return r_shifted_ce(z, y, -r_mm_b(z, y, counts, max_m, gamma, ldam, faithful), s, w)


def r_sigmoid(x):
    return 1.0 / (1.0 + torch.exp(-x))


def eql_init(c):
    return (torch.zeros(c, dtype=F64), torch.zeros(c, dtype=F64), torch.full((c,), 100.0,
                                                                              dtype=F64))


def r_eqlv2(z, y, state, gamma=12.0, mu=0.8, alpha=4.0):
    """Returns (L with the old state, new state)."""
    pos_grad, neg_grad, pos_neg = state
    n, c = z.shape
    t = onehot(y, c)
    neg_w = r_sigmoid(gamma * (pos_neg - mu))
    pos_w = 1 + alpha * (1 - neg_w)
    wmat = pos_w * t + neg_w * (1 - t)
    bce = z.clamp(min=0) - z * t + torch.log1p(torch.exp(-z.abs()))
    loss = (wmat * bce).sum() / n
    with torch.no_grad():
        g = (r_sigmoid(z) - t).abs()
        pos_grad = pos_grad + (g * t * wmat).sum(0)
        neg_grad = neg_grad + (g * (1 - t) * wmat).sum(0)
        pos_neg = pos_grad / (neg_grad + 1e-10)
    return loss, (pos_grad, neg_grad, pos_neg)


def r_ib(z, y, h, counts, focal=False, alpha=1000.0, eps=1e-3, gamma=1.0):
    c = z.shape[1]
    p = torch.exp(z - lse(z)[:, None])
    g = (p - onehot(y, c)).abs().sum(dim=1)
    ib = alpha / (g * h.abs().sum(dim=1) + eps)       # NOT detached
    ell = r_ib_weights(counts)[y] * nll(z, y)
    if focal:
        ell = (1 - torch.exp(-ell)) ** gamma * ell
    return (ell * ib).mean()


def reference(name, z, y, counts, w=None, h=None, **hp):
    hp = {k: v for k, v in hp.items() if k != "ib_start_epoch"}
    if name == "ce":
        return r_ce(z, y, w)
    if name == "focal":
        return r_focal(z, y, w, **hp)
    if name == "lmsce":
        return r_lmsce(z, y, w, **hp)
    if name == "ldam":
        return r_ldam(z, y, counts, w, **hp)
    if name == "elm":
        return r_elm(z, y, counts, w, **hp)
    if name == "elm_wo_dy":
        return r_elm(z, y, counts, w, with_dy=False, **hp)
    if name == "mm_ldam":
        return r_mm(z, y, counts, w, **hp)
    if name == "eqlv2":
        assert w is None
        return r_eqlv2(z, y, eql_init(z.shape[1]), **hp)[0]
    if name in IB:
        assert w is None
        return r_ib(z, y, h, counts, focal=name == "ib_focal", **hp)
    raise AssertionError(name)


# =========================================================================================
# helpers
# =========================================================================================
def batch(counts, n=64, seed=0, name="ce"):
    """Random logits (cosine similarities in [−1, 1] for the cosine-head losses), uniformly
    drawn targets, and 64-d features with both signs."""
    g = torch.Generator().manual_seed(seed)
    c = len(counts)
    if name in COSINE:
        z = torch.rand(n, c, generator=g, dtype=F64) * 2 - 1
    elif name in IB:
        z = torch.randn(n, c, generator=g, dtype=F64)
    else:
        z = torch.randn(n, c, generator=g, dtype=F64) * 2
    y = torch.randint(0, c, (n,), generator=g)
    h = torch.randn(n, 64, generator=g, dtype=F64)
    return z, y, h


def drw(counts):
    return drw_weights(counts, 160, 160)


def run_impl(loss, z, y, h=None, dtype=F64):
    """Value and gradients (w.r.t. logits, and features if given) of the implementation."""
    zz = z.detach().to(dtype).requires_grad_(True)
    hh = None if h is None else h.detach().to(dtype).requires_grad_(True)
    value = loss(zz, y) if hh is None else loss(zz, y, hh)
    value.backward()
    return value, zz.grad, (None if hh is None else hh.grad)


def run_ref(name, z, y, counts, w=None, h=None, dtype=F64, **hp):
    """The reference on the SAME (possibly rounded) inputs the implementation saw."""
    zz = z.detach().to(dtype).to(F64).requires_grad_(True)
    hh = None if h is None else h.detach().to(dtype).to(F64).requires_grad_(True)
    value = reference(name, zz, y, counts, w, hh, **hp)
    value.backward()
    return value.detach(), zz.grad, (None if hh is None else hh.grad)


TOL = {F64: dict(v_rtol=1e-9, v_atol=1e-12, g_rtol=1e-8, g_atol=1e-11),
       torch.float32: dict(v_rtol=1e-4, v_atol=1e-5, g_rtol=1e-3, g_atol=1e-4)}


def assert_matches(got, ref, dtype):
    tol = TOL[dtype]
    value, gz, gh = got
    rvalue, rgz, rgh = ref
    assert value.dim() == 0
    assert value.dtype == dtype, f"loss dtype {value.dtype} for {dtype} logits"
    torch.testing.assert_close(value.detach().to(F64), rvalue, rtol=tol["v_rtol"],
                               atol=tol["v_atol"])
    for g, rg in ((gz, rgz), (gh, rgh)):
        if rg is None:
            continue
        scale = rg.abs().max().item()
        torch.testing.assert_close(g.to(F64), rg, rtol=tol["g_rtol"], atol=tol["g_atol"] * scale)


def word(w, text):
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(w)}(?![A-Za-z0-9_])", text) is not None


# =========================================================================================
# margins and DRW weights: per-class quantities
# =========================================================================================
def test_class_margins_match_spec_list_and_rarest_gets_exactly_max_m():
    m = class_margins(C10, 0.5)
    assert m.dtype == F64
    torch.testing.assert_close(m, torch.tensor(SPEC_MARGINS_C10, dtype=F64), atol=1e-6, rtol=0)
    assert m[-1].item() == 0.5
    torch.testing.assert_close(m, r_margins(C10, 0.5), rtol=1e-12, atol=0)
    torch.testing.assert_close(class_margins(C100, 0.7), r_margins(C100, 0.7), rtol=1e-12,
                               atol=0)
    shuffled = [C10[i] for i in (4, 9, 0, 7, 2, 5, 1, 8, 3, 6)]   # rarest is not the last
    ms = class_margins(shuffled, 1.29)
    torch.testing.assert_close(ms, r_margins(shuffled, 1.29), rtol=1e-12, atol=0)
    assert ms[1].item() == 1.29


def test_drw_weights_ones_before_drw_epoch_spec_values_from_it():
    for epoch in (0, 1, 159):
        torch.testing.assert_close(drw_weights(C10, epoch, 160), torch.ones(10, dtype=F64),
                                   rtol=0, atol=0, check_dtype=False)
    for epoch in (160, 199):
        w = drw_weights(C10, epoch, 160)
        torch.testing.assert_close(w, torch.tensor(SPEC_DRW_C10, dtype=F64), atol=1e-4, rtol=0,
                                   check_dtype=False)
        torch.testing.assert_close(w.to(F64), r_cb_weights(C10, 0.9999), rtol=1e-10, atol=0)
    torch.testing.assert_close(drw_weights(C100, 5, 5, beta=0.999).to(F64),
                               r_cb_weights(C100, 0.999), rtol=1e-10, atol=0)


def test_class_balanced_weights_formula_and_sum_c():
    for counts, beta in ((C10, 0.9999), (C100, 0.9999), (C100, 0.99)):
        cb = class_balanced_weights(counts, beta)
        assert cb.dtype == F64
        assert cb.sum().item() == pytest.approx(len(counts), rel=1e-12)
        torch.testing.assert_close(cb, r_cb_weights(counts, beta), rtol=1e-10, atol=0)


def test_ib_weights_formula():
    for counts in (C10, C100):
        w = ib_weights(counts)
        torch.testing.assert_close(w.to(F64), r_ib_weights(counts), rtol=1e-10, atol=0)
        assert w.sum().item() == pytest.approx(len(counts), rel=1e-12)


# =========================================================================================
# registry
# =========================================================================================
def test_registry_keys_heads_and_defaults():
    assert set(ALL) <= set(LOSSES)
    for name in ALL:
        assert LOSSES[name].head == ("cosine" if name in COSINE else "linear"), name
        assert dict(LOSSES[name].defaults) == DEFAULTS[name], name


# =========================================================================================
# every loss: value and gradient vs. the reference
# =========================================================================================
@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("weighted", [False, True], ids=["w_none", "w_drw"])
@pytest.mark.parametrize("counts_id", list(COUNTS))
@pytest.mark.parametrize("name", WEIGHTED)
def test_weighted_family_matches_reference(name, counts_id, weighted, dtype):
    counts = COUNTS[counts_id]
    z, y, _ = batch(counts, name=name, seed=1)
    w = drw(counts) if weighted else None
    got = run_impl(create_loss(name, counts, weight=w), z, y, dtype=dtype)
    assert_matches(got, run_ref(name, z, y, counts, w, dtype=dtype), dtype)


@pytest.mark.parametrize("name,hp", [
    ("focal", {"gamma": 2.0}),
    ("focal", {"gamma": 0.5}),
    ("lmsce", {"reg_lambda": 1.0}),
    ("ldam", {"s": 16.0, "max_m": 0.3}),
    ("elm", {"s": 16.0, "max_m": 0.3, "lam": 0.5}),
    ("elm", {"lam": 2.0}),
    ("elm_wo_dy", {"s": 10.0, "max_m": 0.8, "lam": 0.7}),
    ("mm_ldam", {"ldam": True}),
    ("mm_ldam", {"s": 10.0, "max_m": 0.8, "gamma": 1.1, "ldam": True}),
    ("mm_ldam", {"faithful": True}),
    ("mm_ldam", {"faithful": True, "ldam": True}),
], ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}={x}" for k, x in v.items()))
@pytest.mark.parametrize("weighted", [False, True], ids=["w_none", "w_drw"])
def test_non_default_hyper_parameters_match_reference(name, hp, weighted):
    z, y, _ = batch(C10, name=name, seed=2)
    w = drw(C10) if weighted else None
    got = run_impl(create_loss(name, C10, weight=w, **hp), z, y)
    assert_matches(got, run_ref(name, z, y, C10, w, **hp), F64)


@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("counts_id", list(COUNTS))
def test_eqlv2_first_step_matches_reference(counts_id, dtype):
    counts = COUNTS[counts_id]
    z, y, _ = batch(counts, seed=3)
    got = run_impl(create_loss("eqlv2", counts).eval(), z, y, dtype=dtype)
    assert_matches(got, run_ref("eqlv2", z, y, counts, dtype=dtype), dtype)


@pytest.mark.parametrize("hp", [{}, {"gamma": 2.0, "alpha": 500.0, "eps": 0.1}],
                         ids=["defaults", "custom"])
@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("counts_id", list(COUNTS))
@pytest.mark.parametrize("name", IB)
def test_ib_matches_reference_wrt_logits_and_features(name, counts_id, dtype, hp):
    counts = COUNTS[counts_id]
    if name == "ib":
        hp = {k: v for k, v in hp.items() if k != "gamma"}
    z, y, h = batch(counts, name=name, seed=4)
    loss = create_loss(name, counts, **hp)
    loss.set_epoch(100)                                   # = the default ib_start_epoch
    got = run_impl(loss, z, y, h, dtype=dtype)
    assert_matches(got, run_ref(name, z, y, counts, h=h, dtype=dtype, **hp), dtype)


# =========================================================================================
# bf16 autocast
# =========================================================================================
@pytest.mark.parametrize("name", ALL)
def test_runs_under_bf16_autocast_close_to_fp32(name):
    z, y, h = batch(C10, name=name, seed=5)
    zb, hb = z.to(torch.bfloat16), h.to(torch.bfloat16)
    loss = create_loss(name, C10).eval()
    loss.set_epoch(200)
    ref = reference(name, zb.to(F64), y, C10, h=hb.to(F64)).item()   # same rounded inputs
    zz = zb.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(zz, y, hb) if name in IB else loss(zz, y)
    assert value.dim() == 0 and torch.isfinite(value)
    assert value.float().item() == pytest.approx(ref, rel=5e-2, abs=1e-2)
    value.float().backward()
    assert torch.isfinite(zz.grad).all()


# =========================================================================================
# identities
# =========================================================================================
@pytest.mark.parametrize("weighted", [False, True], ids=["w_none", "w_drw"])
def test_elm_with_lambda_zero_is_ldam(weighted):
    for counts in (C10, C100):
        z, y, _ = batch(counts, name="elm", seed=6)
        w = drw(counts) if weighted else None
        for hp in ({}, {"s": 10.0, "max_m": 0.9}):
            elm = run_impl(create_loss("elm", counts, weight=w, lam=0.0, **hp), z, y)
            ldam = run_impl(create_loss("ldam", counts, weight=w, **hp), z, y)
            torch.testing.assert_close(elm[0], ldam[0], rtol=1e-12, atol=0)
            torch.testing.assert_close(elm[1], ldam[1], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("lam", [1.0, 0.6, 0.0])
def test_elm_equals_its_softplus_form(lam):
    """ℓ_i = softplus(s(z_{c*} − z_y) + sΔ_y − sλΔ_{c*} + ρ̂), ρ̂ = log Σ_{c≠y} e^{s(z_c − z_{c*})};
    mean over i (weight=None). Written per sample with the math module."""
    for counts in (C10, C100):
        z, y, _ = batch(counts, name="elm", seed=7)
        s = 30.0
        d = [0.5 * (min(counts) / n) ** 0.25 for n in counts]
        total = 0.0
        for row, t in zip(z.tolist(), y.tolist(), strict=True):
            cs = max((j for j in range(len(row)) if j != t), key=lambda j: (row[j], -j))
            rho = math.log(sum(math.exp(s * (row[c] - row[cs])) for c in range(len(row))
                               if c != t))
            x = s * (row[cs] - row[t]) + s * d[t] - s * lam * d[cs] + rho
            total += max(x, 0.0) + math.log1p(math.exp(-abs(x)))
        got = create_loss("elm", counts, lam=lam)(z, y)
        assert got.item() == pytest.approx(total / len(y), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("weighted", [False, True], ids=["w_none", "w_drw"])
def test_ldam_with_zero_margin_and_unit_scale_is_ce(weighted):
    z, y, _ = batch(C10, seed=8)
    w = drw(C10) if weighted else None
    ldam = run_impl(create_loss("ldam", C10, weight=w, s=1.0, max_m=0.0), z, y)
    ce = run_impl(create_loss("ce", C10, weight=w), z, y)
    torch.testing.assert_close(ldam[0], ce[0], rtol=1e-12, atol=0)
    torch.testing.assert_close(ldam[1], ce[1], rtol=1e-10, atol=1e-14)
    assert ce[0].item() == pytest.approx(torch.nn.functional.cross_entropy(z, y, weight=w).item(),
                                         rel=1e-12)


def test_focal_with_gamma_zero_is_ce_or_plain_mean_of_weighted_ce():
    z, y, _ = batch(C100, seed=9)
    focal = run_impl(create_loss("focal", C100, gamma=0.0), z, y)
    ce = run_impl(create_loss("ce", C100), z, y)
    torch.testing.assert_close(focal[0], ce[0], rtol=1e-12, atol=0)
    torch.testing.assert_close(focal[1], ce[1], rtol=1e-10, atol=1e-14)
    # with w: mean_i w_{y_i} CE_i, a PLAIN mean over N, not CE's weighted mean
    w = drw(C100)
    per = torch.nn.functional.cross_entropy(z, y, reduction="none")
    got = create_loss("focal", C100, gamma=0.0, weight=w)(z, y)
    assert got.item() == pytest.approx((w[y] * per).mean().item(), rel=1e-12)
    assert got.item() != pytest.approx(torch.nn.functional.cross_entropy(z, y, weight=w).item(),
                                       rel=1e-3)


@pytest.mark.parametrize("weighted", [False, True], ids=["w_none", "w_drw"])
def test_elm_wo_dy_is_elm_with_the_target_logit_raised_by_its_margin(weighted):
    """elm_wo_dy: o_y = z_y + λΔ_{c*}; ELM at z' = z + Δ_y e_y gives z_y + Δ_y − Δ_y + λΔ_{c*}
    with the same c* (non-target logits unchanged)."""
    for counts in (C10, C100):
        z, y, _ = batch(counts, name="elm", seed=10)
        w = drw(counts) if weighted else None
        d = class_margins(counts, 0.5)
        z_up = z + onehot(y, len(counts)) * d[y][:, None]
        a = create_loss("elm_wo_dy", counts, weight=w, lam=0.7)(z, y)
        b = create_loss("elm", counts, weight=w, lam=0.7)(z_up, y)
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
        # and with λ = 0 it is CE on s·z, i.e. LDAM with no margin
        a0 = create_loss("elm_wo_dy", counts, weight=w, lam=0.0)(z, y)
        l0 = create_loss("ldam", counts, weight=w, max_m=0.0)(z, y)
        torch.testing.assert_close(a0, l0, rtol=1e-12, atol=0)


# =========================================================================================
# ELM's hardest negative c*
# =========================================================================================
def _elm_row(z_row, t, cs, s=1.0, lam=1.0, counts=C10):
    d = [0.5 * (min(counts) / n) ** 0.25 for n in counts]
    o = list(z_row)
    o[t] = o[t] - d[t] + lam * d[cs]
    o = [s * v for v in o]
    m = max(o)
    return m + math.log(sum(math.exp(v - m) for v in o)) - o[t]


@pytest.mark.parametrize("name", ["elm", "elm_wo_dy"])
def test_elm_cstar_excludes_target_and_ties_go_to_lowest_index(name):
    cases = []   # (row, target, the c* the definition demands)
    r = [0.1, -0.2, 0.3, 0.0, -0.5, 0.2, 0.25, -0.1, 0.05, 0.15]
    cases.append((r, 2, 6))                                    # target is the max: next best
    r = [0.9, 0.1, 0.4, 0.4, 0.2, 0.4, -0.3, 0.0, 0.1, 0.3]
    cases.append((r, 0, 2))                                    # three-way tie 2, 3, 5 -> 2
    r = [0.1, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1]
    cases.append((r, 9, 0))                                    # tie 0, 1 (and target 9) -> 0
    r = [0.0, 0.2, 0.0, 0.7, 0.0, 0.0, 0.0, 0.7, 0.0, 0.7]
    cases.append((r, 3, 7))                                    # target tied at the max -> 7
    cases.append((r, 7, 3))                                    # same row, target 7 -> 3
    r = [-0.9, -0.7, -0.7, -0.8, -0.6, -0.6, -0.95, -0.99, -0.75, -0.6]
    cases.append((r, 4, 5))                                    # all negative; tie 5, 9 -> 5
    cases.append(([0.0] * 10, 0, 1))                           # all equal: lowest non-target
    cases.append(([0.0] * 10, 1, 0))
    with_dy = name == "elm"
    for row, t, cs in cases:
        loss = create_loss(name, C10, s=1.0, lam=1.0)
        got = loss(torch.tensor([row], dtype=F64), torch.tensor([t])).item()
        d = [0.5 * (min(C10) / n) ** 0.25 for n in C10]
        expect = _elm_row(row if with_dy else [v + (d[t] if j == t else 0.0)
                                               for j, v in enumerate(row)], t, cs)
        assert got == pytest.approx(expect, rel=1e-12), (row, t, cs)
        # and our loop-based reference agrees with the hand-picked c*
        assert int(r_cstar(torch.tensor([row]), torch.tensor([t]))[0]) == cs


def test_elm_has_no_gradient_through_the_choice_of_cstar():
    z, y, _ = batch(C10, name="elm", seed=11)
    loss = create_loss("elm", C10)
    value, gz, _ = run_impl(loss, z, y)
    # reference: CE with the shift −Δ_y + λΔ_{c*} held constant
    d = r_margins(C10, 0.5)
    shift = (d[r_cstar(z, y)] - d[y]).detach()
    zz = z.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(30.0 * (zz + onehot(y, 10) * shift[:, None]), y).backward()
    torch.testing.assert_close(gz, zz.grad, rtol=1e-10, atol=1e-14)
    # and central finite differences of the implementation itself (c* locally constant)
    g = torch.Generator().manual_seed(0)
    for _ in range(8):
        i, j = int(torch.randint(0, 64, (1,), generator=g)), int(torch.randint(0, 10, (1,),
                                                                               generator=g))
        zp, zm = z.clone(), z.clone()
        zp[i, j] += 1e-6
        zm[i, j] -= 1e-6
        fd = (loss(zp, y).item() - loss(zm, y).item()) / 2e-6
        assert gz[i, j].item() == pytest.approx(fd, rel=1e-5, abs=1e-9), (i, j)


# =========================================================================================
# EQLv2 state
# =========================================================================================
@pytest.mark.parametrize("counts_id", list(COUNTS))
def test_eqlv2_state_is_buffers_and_updates_in_training_only(counts_id):
    counts = COUNTS[counts_id]
    c = len(counts)
    loss = create_loss("eqlv2", counts)
    sd = loss.state_dict()
    names = {k.rsplit(".", 1)[-1]: k for k in sd}
    assert {"pos_grad", "neg_grad", "pos_neg"} <= set(names)
    init = dict(zip(("pos_grad", "neg_grad", "pos_neg"), eql_init(c), strict=True))
    for k, v in init.items():
        torch.testing.assert_close(sd[names[k]].to(F64), v, rtol=0, atol=0)

    state = eql_init(c)
    z0, y0, _ = batch(counts, seed=12)
    # eval: value with the initial state, nothing changes
    loss.eval()
    before = {k: v.clone() for k, v in loss.state_dict().items()}
    assert_matches(run_impl(loss, z0, y0), run_ref("eqlv2", z0, y0, counts), F64)
    after = loss.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)

    # train: two steps; each loss uses the OLD state, then the state updates
    loss.train()
    for step in range(2):
        z, y, _ = batch(counts, seed=13 + step)
        zz = z.clone().requires_grad_(True)
        expect, new_state = r_eqlv2(zz, y, state)
        expect.backward()
        value, gz, _ = run_impl(loss, z, y)
        # step 0 uses the initial state exactly; step 1 depends on the buffers' precision
        rtol = 1e-9 if step == 0 else 1e-6
        torch.testing.assert_close(value.detach(), expect.detach(), rtol=rtol, atol=0)
        torch.testing.assert_close(gz, zz.grad, rtol=rtol * 10, atol=1e-12)
        sd = loss.state_dict()
        for k, v in zip(("pos_grad", "neg_grad", "pos_neg"), new_state, strict=True):
            torch.testing.assert_close(sd[names[k]].to(F64), v, rtol=1e-6, atol=1e-12)
        state = new_state
    # the second step's weights really differ from the initial ones (rare classes)
    assert not torch.allclose(state[2], torch.full((c,), 100.0, dtype=F64))

    # eval again: frozen
    before = {k: v.clone() for k, v in loss.state_dict().items()}
    loss.eval()(z0, y0)
    assert all(torch.equal(before[k], loss.state_dict()[k]) for k in before)

    # the state travels with the checkpoint
    fresh = create_loss("eqlv2", counts)
    fresh.load_state_dict(loss.state_dict())
    fresh.eval()
    torch.testing.assert_close(fresh(z0, y0), loss(z0, y0), rtol=0, atol=0)
    z2, y2, _ = batch(counts, seed=20)
    expect, _ = r_eqlv2(z2, y2, state)
    torch.testing.assert_close(fresh(z2, y2), expect, rtol=1e-6, atol=0)


# =========================================================================================
# IB schedule, features
# =========================================================================================
@pytest.mark.parametrize("name", IB)
def test_ib_is_plain_unweighted_ce_before_its_start_epoch(name):
    z, y, h = batch(C10, name=name, seed=14)
    loss = create_loss(name, C10)
    for epoch in (0, 50, 99):
        loss.set_epoch(epoch)
        assert_matches(run_impl(loss, z, y, h), run_ref("ce", z, y, C10), F64)
    loss.set_epoch(100)
    assert_matches(run_impl(loss, z, y, h), run_ref(name, z, y, C10, h=h), F64)
    loss.set_epoch(150)
    assert_matches(run_impl(loss, z, y, h), run_ref(name, z, y, C10, h=h), F64)

    custom = create_loss(name, C100, ib_start_epoch=5)
    z, y, h = batch(C100, name=name, seed=15)
    custom.set_epoch(4)
    assert_matches(run_impl(custom, z, y, h), run_ref("ce", z, y, C100), F64)
    custom.set_epoch(5)
    assert_matches(run_impl(custom, z, y, h), run_ref(name, z, y, C100, h=h), F64)


@pytest.mark.parametrize("name", IB)
def test_ib_features_required_and_one_dimensional_accepted(name):
    z, y, h = batch(C10, name=name, seed=16)
    loss = create_loss(name, C10)
    loss.set_epoch(100)
    with pytest.raises(ValueError, match="features"):
        loss(z, y)
    with pytest.raises(ValueError, match="features"):
        loss(z, y, None)
    h1 = torch.randn(len(y), 1, dtype=F64, generator=torch.Generator().manual_seed(3))
    assert_matches(run_impl(loss, z, y, h1), run_ref(name, z, y, C10, h=h1), F64)
    # D = 1 holding the L1 norm gives the same value as the full features
    torch.testing.assert_close(loss(z, y, h.abs().sum(1, keepdim=True)), loss(z, y, h),
                               rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", IB)
def test_ib_requires_features_even_before_its_start_epoch(name):
    """IB needs h (docs/losses.md): without features it raises (fail fast, not at epoch 100)."""
    z, y, _ = batch(C10, name=name, seed=17)
    loss = create_loss(name, C10)
    loss.set_epoch(0)
    with pytest.raises(ValueError, match="features"):
        loss(z, y)


# =========================================================================================
# MM-LDAM forms
# =========================================================================================
def _mm_batch():
    """Cosine logits where both public-code slips matter: the first target differs from the
    others, and some rows have every non-target logit negative (so a 0 in the target slot
    wins the 'non-target max')."""
    z, y, _ = batch(C10, name="mm_ldam", seed=18)
    z[8:24] = -z[8:24].abs()
    z[8:16, :] -= 0.05
    y[0] = 9
    return z, y


@pytest.mark.parametrize("hp", [{}, {"ldam": True}, {"faithful": True},
                                {"faithful": True, "ldam": True},
                                {"faithful": True, "ldam": True, "max_m": 0.8, "gamma": 1.1}],
                         ids=["per_sample", "per_sample_ldam", "faithful", "faithful_ldam",
                              "faithful_custom"])
@pytest.mark.parametrize("weighted", [False, True], ids=["w_none", "w_drw"])
def test_mm_ldam_forms_match_reference(hp, weighted):
    z, y = _mm_batch()
    w = drw(C10) if weighted else None
    got = run_impl(create_loss("mm_ldam", C10, weight=w, **hp), z, y)
    assert_matches(got, run_ref("mm_ldam", z, y, C10, w, **hp), F64)


def test_mm_ldam_slips_change_the_shift_and_per_sample_is_default():
    z, y = _mm_batch()
    b_ps = r_mm_b(z, y, C10, 1.29, 1.528, False, False)
    b_fa = r_mm_b(z, y, C10, 1.29, 1.528, False, True)
    assert (b_ps - b_fa).abs().max() > 1e-3                     # the batch does exercise them
    default = create_loss("mm_ldam", C10)(z, y)
    explicit = create_loss("mm_ldam", C10, faithful=False)(z, y)
    faithful = create_loss("mm_ldam", C10, faithful=True)(z, y)
    torch.testing.assert_close(default, explicit, rtol=0, atol=0)
    assert abs(default.item() - faithful.item()) > 1e-6


def test_mm_ldam_ldam_margins_always_use_m_half():
    """M_i = max_m − Δ_{y_i} with Δ computed at M = 0.5 whatever max_m is."""
    z, y = _mm_batch()
    for max_m in (0.6, 1.29, 2.0):
        got = create_loss("mm_ldam", C10, ldam=True, max_m=max_m)(z, y)
        expect = r_mm(z, y, C10, max_m=max_m, ldam=True)
        torch.testing.assert_close(got, expect, rtol=1e-10, atol=0)


# =========================================================================================
# set_weight (DRW)
# =========================================================================================
@pytest.mark.parametrize("name", WEIGHTED)
def test_set_weight_switches_to_weighted_reference_and_none_reverts(name):
    z, y, _ = batch(C100, name=name, seed=19)
    w = drw(C100)
    loss = create_loss(name, C100)
    plain = run_impl(loss, z, y)
    assert_matches(plain, run_ref(name, z, y, C100), F64)
    loss.set_weight(w)
    assert_matches(run_impl(loss, z, y), run_ref(name, z, y, C100, w), F64)
    loss.set_weight(w.float())                                    # a float32 weight works too
    assert_matches(run_impl(loss, z, y), run_ref(name, z, y, C100, w.float()), F64)
    loss.set_weight(None)
    again = run_impl(loss, z, y)
    torch.testing.assert_close(again[0], plain[0], rtol=0, atol=0)
    torch.testing.assert_close(again[1], plain[1], rtol=0, atol=0)
    # created weighted, then set_weight(None): unweighted
    loss = create_loss(name, C100, weight=w)
    loss.set_weight(None)
    torch.testing.assert_close(loss(z, y), plain[0], rtol=0, atol=0)
    # DRW's all-ones weights before drw_epoch give the unweighted value
    loss.set_weight(drw_weights(C100, 0, 160))
    torch.testing.assert_close(loss(z, y), plain[0], rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", ALL)
def test_set_epoch_is_accepted_and_a_no_op_except_for_ib(name):
    z, y, h = batch(C10, name=name, seed=21)
    loss = create_loss(name, C10).eval()
    args = (z, y, h) if name in IB else (z, y)
    loss.set_epoch(0)
    a = loss(*args)
    loss.set_epoch(180)
    b = loss(*args)
    if name in IB:
        assert a.item() != pytest.approx(b.item(), rel=1e-6)
    else:
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# =========================================================================================
# bad input
# =========================================================================================
def test_unknown_loss_name_lists_valid_names():
    with pytest.raises(ValueError) as e:
        create_loss("elmo", C10)
    msg = str(e.value)
    assert "elmo" in msg
    for name in ALL:
        assert word(name, msg), (name, msg)


@pytest.mark.parametrize("name,bad", [
    ("ce", "lam"), ("ce", "s"), ("focal", "s"), ("lmsce", "gamma"), ("ldam", "lam"),
    ("elm", "faithful"), ("elm", "gamma"), ("ib", "gamma"), ("eqlv2", "eps"),
    ("mm_ldam", "lam"), ("elm_wo_dy", "ib_start_epoch"), ("focal", "reg_lambda"),
])
def test_hyper_parameter_of_another_loss_is_rejected_naming_it_and_the_valid_ones(name, bad):
    with pytest.raises(ValueError) as e:
        create_loss(name, C10, **{bad: 1.0})
    msg = str(e.value)
    assert word(bad, msg), msg
    for ok in DEFAULTS[name]:
        assert word(ok, msg), (ok, msg)


@pytest.mark.parametrize("name,bad", [("elm", "lamda"), ("ce", "foo"), ("ib", "alpah")])
def test_unknown_hyper_parameter_is_rejected(name, bad):
    with pytest.raises(ValueError) as e:
        create_loss(name, C10, **{bad: 1.0})
    msg = str(e.value)
    assert word(bad, msg), msg
    for ok in DEFAULTS[name]:
        assert word(ok, msg), (ok, msg)


# =========================================================================================
# CUDA
# =========================================================================================
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ALL)
def test_every_loss_on_cuda_matches_reference(name):
    dev = torch.device("cuda")
    z, y, h = batch(C100, name=name, seed=22)
    weighted = name in WEIGHTED
    w = drw(C100) if weighted else None
    loss = create_loss(name, C100, weight=w).to(dev)
    loss.set_epoch(100)
    loss.eval()
    zz = z.to(dev).requires_grad_(True)
    hh = h.to(dev).requires_grad_(True) if name in IB else None
    value = loss(zz, y.to(dev), hh) if hh is not None else loss(zz, y.to(dev))
    value.backward()
    ref = run_ref(name, z, y, C100, w, h if name in IB else None)
    got = (value.cpu(), zz.grad.cpu(), None if hh is None else hh.grad.cpu())
    tol = dict(v_rtol=1e-7, v_atol=1e-10, g_rtol=1e-6, g_atol=1e-9)
    torch.testing.assert_close(got[0].to(F64), ref[0], rtol=tol["v_rtol"], atol=tol["v_atol"])
    torch.testing.assert_close(got[1], ref[1], rtol=tol["g_rtol"],
                               atol=tol["g_atol"] * ref[1].abs().max().item())
    if weighted:   # a CPU weight handed to a CUDA module (DRW switches mid-run)
        loss.set_weight(None)
        loss.set_weight(w)
        torch.testing.assert_close(loss(z.to(dev), y.to(dev)).cpu(), ref[0], rtol=1e-7,
                                   atol=1e-10)
    # float32 and bf16 autocast on the device
    z32 = z.float().to(dev)
    args = (z32, y.to(dev), h.float().to(dev)) if name in IB else (z32, y.to(dev))
    loss.eval()
    v32 = loss(*args)
    assert v32.item() == pytest.approx(ref[0].item(), rel=1e-4)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        vb = loss(*args)
    assert torch.isfinite(vb) and vb.float().item() == pytest.approx(ref[0].item(), rel=5e-2,
                                                                     abs=1e-2)
    if name == "eqlv2":   # buffers live on the device and update there in training
        loss.train()
        loss(z.to(dev), y.to(dev))
        _, state = r_eqlv2(z, y, eql_init(100))
        pos_neg = {k.rsplit(".", 1)[-1]: v for k, v in loss.state_dict().items()}["pos_neg"]
        assert pos_neg.device.type == "cuda"
        torch.testing.assert_close(pos_neg.cpu().to(F64), state[2], rtol=1e-6, atol=1e-12)
