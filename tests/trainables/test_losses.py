"""Every loss against float64 reference code written from SPEC.md sections 1-3.

The references below are deliberately naive (loops over samples, explicit sums) so that they
share no code and no tricks with the implementation.
"""
import math

import pytest
import torch

from trainables.losses import (LOSSES, class_balanced_weights, class_margins, create_loss,
                               drw_weights, ib_weights)

C10 = [int(5000 * (1 / 100) ** (i / 9)) for i in range(10)]       # CIFAR-10-LT r=100
C100 = [int(500 * (1 / 10) ** (i / 99)) for i in range(100)]       # CIFAR-100-LT r=10
SPEC_MARGINS = [0.158114, 0.179697, 0.204238, 0.232091, 0.263829, 0.299768, 0.340675,
                0.387221, 0.440497, 0.5]
SPEC_DRW = [0.0506, 0.0769, 0.1211, 0.1950, 0.3188, 0.5246, 0.8684, 1.4426, 2.4092, 3.9927]
D = torch.float64


# =========================================================================================
# references (float64, per sample)
# =========================================================================================
def ref_margins(counts, m):
    return [m * (min(counts) / n) ** 0.25 for n in counts]


def ref_cb(counts, beta):
    w = [(1 - beta) / (1 - beta ** n) for n in counts]
    return [x / sum(w) * len(counts) for x in w]


def log_softmax_row(v):
    mx = max(v)
    lse = mx + math.log(sum(math.exp(a - mx) for a in v))
    return [a - lse for a in v]


def ce_i(row, y):
    return -log_softmax_row(row)[y]


def weighted_mean(vals, ys, w):
    if w is None:
        return sum(vals) / len(vals)
    return sum(w[y] * v for v, y in zip(vals, ys)) / sum(w[y] for y in ys)


def ref_ce(z, ys, w=None):
    return weighted_mean([ce_i(r, y) for r, y in zip(z, ys)], ys, w)


def ref_focal(z, ys, w=None, gamma=1.0):
    out = []
    for r, y in zip(z, ys):
        li = ce_i(r, y) * (1.0 if w is None else w[y])
        out.append((1 - math.exp(-li)) ** gamma * li)
    return sum(out) / len(out)


def ref_lmsce(z, ys, w=None, reg=0.3):
    c = len(z[0])
    regs = []
    for r, y in zip(z, ys):
        others = [a for j, a in enumerate(r) if j != y]
        lp = log_softmax_row(others)
        regs.append(0.5 * sum((math.exp(q) - 1 / (c - 1)) * q for q in lp))
    return ref_ce(z, ys, w) + reg * sum(regs) / len(regs)


def cstar(r, y):
    best = None
    for j, a in enumerate(r):
        if j != y and (best is None or a > r[best]):
            best = j
    return best


def ref_margin_ce(z, ys, shift, s, w=None):
    vals = []
    for i, (r, y) in enumerate(zip(z, ys)):
        o = [s * (a + (shift[i] if j == y else 0.0)) for j, a in enumerate(r)]
        vals.append(ce_i(o, y))
    return weighted_mean(vals, ys, w)


def ref_ldam(z, ys, counts, w=None, s=30.0, max_m=0.5):
    m = ref_margins(counts, max_m)
    return ref_margin_ce(z, ys, [-m[y] for y in ys], s, w)


def ref_elm(z, ys, counts, w=None, s=30.0, max_m=0.5, lam=1.0, with_dy=True):
    m = ref_margins(counts, max_m)
    shift = [(-m[y] if with_dy else 0.0) + lam * m[cstar(r, y)] for r, y in zip(z, ys)]
    return ref_margin_ce(z, ys, shift, s, w)


def ref_mm(z, ys, counts, w=None, s=19.0, max_m=1.29, gamma=1.528, ldam=False,
           faithful=False, frozen_from=None):
    """``frozen_from``: logits at which the shift b is computed (SPEC: under no_grad, so the
    gradient treats it as a constant; finite differences must too)."""
    d = ref_margins(counts, 0.5)
    shift = mm_shift(frozen_from if frozen_from is not None else z, ys, d, max_m, gamma, ldam,
                     faithful)
    return ref_margin_ce(z, ys, shift, s, w)


def mm_shift(z, ys, d, max_m, gamma, ldam, faithful):
    shift = []
    for r, y in zip(z, ys):
        mi = max_m - d[y] if ldam else max_m
        if faithful:
            pos = r[ys[0]]
            neg = max(a if j != y else 0.0 for j, a in enumerate(r))
        else:
            pos = r[y]
            neg = max(a for j, a in enumerate(r) if j != y)
        fg, bg = max(pos - neg, 0.0), max(neg - pos, 0.0)
        b = (math.exp(-fg - mi * gamma) if fg > 0 else 0.0) + (math.exp(-bg - mi) if bg > 0
                                                               else 0.0)
        shift.append(-b)
    return shift


def sigmoid(a):
    return 1 / (1 + math.exp(-a))


def ref_eqlv2_step(z, ys, state, gamma=12.0, mu=0.8, alpha=4.0):
    """Returns (loss, new_state); state = (pos_grad, neg_grad, pos_neg) lists."""
    pos_grad, neg_grad, pos_neg = (list(s) for s in state)
    c, n = len(z[0]), len(z)
    neg_w = [sigmoid(gamma * (pn - mu)) for pn in pos_neg]
    pos_w = [1 + alpha * (1 - nw) for nw in neg_w]
    total = 0.0
    new_pos, new_neg = [0.0] * c, [0.0] * c
    for r, y in zip(z, ys):
        for j, a in enumerate(r):
            t = 1.0 if j == y else 0.0
            wij = pos_w[j] * t + neg_w[j] * (1 - t)
            bce = max(a, 0) - a * t + math.log1p(math.exp(-abs(a)))
            total += wij * bce
            g = abs(sigmoid(a) - t)
            new_pos[j] += g * t * wij
            new_neg[j] += g * (1 - t) * wij
    pos_grad = [p + q for p, q in zip(pos_grad, new_pos)]
    neg_grad = [p + q for p, q in zip(neg_grad, new_neg)]
    pos_neg = [p / (q + 1e-10) for p, q in zip(pos_grad, neg_grad)]
    return total / n, (pos_grad, neg_grad, pos_neg)


def ref_ib(z, ys, h, counts, focal=False, gamma=1.0, alpha=1000.0, eps=1e-3):
    w = ib_ref_weights(counts)
    out = []
    for r, y, hi in zip(z, ys, h):
        p = [math.exp(q) for q in log_softmax_row(r)]
        g = sum(abs(pj - (1.0 if j == y else 0.0)) for j, pj in enumerate(p))
        ib = alpha / (g * sum(abs(v) for v in hi) + eps)
        li = w[y] * ce_i(r, y)
        out.append(((1 - math.exp(-li)) ** gamma * li if focal else li) * ib)
    return sum(out) / len(out)


def ib_ref_weights(counts):
    inv = [1 / n for n in counts]
    return [x / sum(inv) * len(counts) for x in inv]


# =========================================================================================
# helpers
# =========================================================================================
def sample(counts, n=64, seed=0, scale=1.0, dtype=D):
    g = torch.Generator().manual_seed(seed)
    c = len(counts)
    z = (torch.rand(n, c, generator=g, dtype=D) * 2 - 1) * scale    # cosine-like logits
    y = torch.randint(0, c, (n,), generator=g)
    h = torch.rand(n, 64, generator=g, dtype=D)
    return z.to(dtype), y, h.to(dtype)


def ref_value(name, z, y, counts, w=None, h=None, **hp):
    zl, yl = z.tolist(), y.tolist()
    wl = None if w is None else w.tolist()
    return {"ce": lambda: ref_ce(zl, yl, wl),
            "focal": lambda: ref_focal(zl, yl, wl, **hp),
            "lmsce": lambda: ref_lmsce(zl, yl, wl, **hp),
            "ldam": lambda: ref_ldam(zl, yl, counts, wl, **hp),
            "elm": lambda: ref_elm(zl, yl, counts, wl, **hp),
            "elm_wo_dy": lambda: ref_elm(zl, yl, counts, wl, with_dy=False, **hp),
            "mm_ldam": lambda: ref_mm(zl, yl, counts, wl, **hp),
            "ib": lambda: ref_ib(zl, yl, h.tolist(), counts, **hp),
            "ib_focal": lambda: ref_ib(zl, yl, h.tolist(), counts, focal=True, **hp)}[name]()


def fd_grad(name, z, y, counts, w=None, h=None, entries=6, eps=1e-6, wrt="z", **hp):
    """Central finite differences of the float64 reference at a few entries."""
    g = torch.Generator().manual_seed(1)
    target = z if wrt == "z" else h
    out = {}
    for _ in range(entries):
        i = int(torch.randint(0, target.shape[0], (1,), generator=g))
        j = int(torch.randint(0, target.shape[1], (1,), generator=g))
        plus, minus = target.clone(), target.clone()
        plus[i, j] += eps
        minus[i, j] -= eps
        args = (plus, h) if wrt == "z" else (z, plus)
        args_m = (minus, h) if wrt == "z" else (z, minus)
        if name == "mm_ldam":
            hp["frozen_from"] = z.tolist()
        f_p = ref_value(name, args[0], y, counts, w, args[1], **hp)
        f_m = ref_value(name, args_m[0], y, counts, w, args_m[1], **hp)
        out[(i, j)] = (f_p - f_m) / (2 * eps)
    return out


GRADED = ["ce", "focal", "lmsce", "ldam", "elm", "elm_wo_dy", "mm_ldam"]


# =========================================================================================
# per-class quantities
# =========================================================================================
def test_margins_match_spec_and_rarest_gets_max_m():
    m = class_margins(C10, 0.5)
    assert m.dtype == D
    torch.testing.assert_close(m, torch.tensor(SPEC_MARGINS, dtype=D), atol=1e-6, rtol=0)
    assert m[-1].item() == pytest.approx(0.5, abs=1e-15)
    torch.testing.assert_close(class_margins(C100, 0.7), torch.tensor(ref_margins(C100, 0.7),
                                                                      dtype=D))


def test_drw_weights_ones_before_and_spec_values_after():
    assert torch.equal(drw_weights(C10, 159, 160), torch.ones(10, dtype=D))
    torch.testing.assert_close(drw_weights(C10, 160, 160), torch.tensor(SPEC_DRW, dtype=D),
                               atol=1e-4, rtol=0)
    cb = class_balanced_weights(C100, 0.9999)
    assert cb.sum().item() == pytest.approx(100)
    torch.testing.assert_close(cb, torch.tensor(ref_cb(C100, 0.9999), dtype=D))


def test_ib_weights_formula():
    torch.testing.assert_close(ib_weights(C10), torch.tensor(ib_ref_weights(C10), dtype=D))


# =========================================================================================
# values and gradients vs. the references
# =========================================================================================
@pytest.mark.parametrize("counts", [C10, C100], ids=["c10lt100", "c100lt10"])
@pytest.mark.parametrize("weighted", [False, True], ids=["w=None", "w=DRW"])
@pytest.mark.parametrize("name", GRADED)
def test_value_and_gradient_match_reference(name, counts, weighted):
    z, y, _ = sample(counts, n=48, scale=1.0 if name != "ce" else 3.0)
    w = drw_weights(counts, 1, 0) if weighted else None
    loss = create_loss(name, counts, weight=w)
    zz = z.clone().requires_grad_(True)
    value = loss(zz, y)
    value.backward()
    assert value.item() == pytest.approx(ref_value(name, z, y, counts, w), rel=1e-9, abs=1e-10)
    for (i, j), g in fd_grad(name, z, y, counts, w).items():
        assert zz.grad[i, j].item() == pytest.approx(g, rel=1e-5, abs=1e-8), (i, j)


@pytest.mark.parametrize("name", ["ib", "ib_focal"])
def test_ib_value_and_gradients_wrt_logits_and_features(name):
    z, y, h = sample(C10, n=32, scale=3.0)
    loss = create_loss(name, C10)
    loss.set_epoch(100)                                    # IB active from its start epoch
    zz, hh = z.clone().requires_grad_(True), h.clone().requires_grad_(True)
    value = loss(zz, y, hh)
    value.backward()
    assert value.item() == pytest.approx(ref_value(name, z, y, C10, h=h), rel=1e-9)
    for (i, j), g in fd_grad(name, z, y, C10, h=h).items():
        assert zz.grad[i, j].item() == pytest.approx(g, rel=1e-5, abs=1e-8)
    for (i, j), g in fd_grad(name, z, y, C10, h=h, wrt="h").items():
        assert hh.grad[i, j].item() == pytest.approx(g, rel=1e-5, abs=1e-8)


def test_ib_is_plain_ce_before_its_start_and_needs_features():
    z, y, h = sample(C10, scale=3.0)
    loss = create_loss("ib_focal", C10, ib_start_epoch=5)
    loss.set_epoch(4)
    assert loss(z, y, h).item() == pytest.approx(ref_ce(z.tolist(), y.tolist()), rel=1e-12)
    loss.set_epoch(5)
    assert loss(z, y, h).item() == pytest.approx(ref_value("ib_focal", z, y, C10, h=h),
                                                 rel=1e-9)
    one_d = h.abs().sum(1, keepdim=True)                   # D = 1 is valid (the L1 norm)
    assert loss(z, y, one_d).item() == pytest.approx(loss(z, y, h).item(), rel=1e-12)
    with pytest.raises(ValueError, match="needs features"):
        loss(z, y)


def test_eqlv2_two_steps_match_reference_and_state_rules():
    loss = create_loss("eqlv2", C10)
    assert {"pos_grad", "neg_grad", "pos_neg"} <= set(loss.state_dict())
    state = ([0.0] * 10, [0.0] * 10, [100.0] * 10)
    for step in range(2):
        z, y, _ = sample(C10, seed=step, scale=3.0)
        expect, state = ref_eqlv2_step(z.tolist(), y.tolist(), state)
        assert loss.train()(z, y).item() == pytest.approx(expect, rel=1e-9)
        torch.testing.assert_close(loss.pos_neg, torch.tensor(state[2], dtype=D))
    before = {k: v.clone() for k, v in loss.state_dict().items()}
    loss.eval()(z, y)
    assert all(torch.equal(before[k], v) for k, v in loss.state_dict().items())
    # gradient w.r.t. logits: d/dz of Σ W·BCE / N with W fixed = W (σ(z) − t) / N
    zz = z.clone().requires_grad_(True)
    fresh = create_loss("eqlv2", C10).eval()
    fresh(zz, y).backward()
    t = torch.nn.functional.one_hot(y, 10).to(D)
    nw = torch.sigmoid(12 * (torch.full((10,), 100.0, dtype=D) - 0.8))
    wmat = (1 + 4 * (1 - nw)) * t + nw * (1 - t)
    torch.testing.assert_close(zz.grad, wmat * (torch.sigmoid(z) - t) / z.shape[0])


def test_mm_ldam_variants():
    z, y, _ = sample(C10, scale=1.0)
    for hp in ({"ldam": False}, {"ldam": True}, {"faithful": True},
               {"ldam": True, "faithful": True, "s": 10.0, "max_m": 0.8, "gamma": 1.1}):
        got = create_loss("mm_ldam", C10, **hp)(z, y).item()
        assert got == pytest.approx(ref_value("mm_ldam", z, y, C10, **hp), rel=1e-9), hp
    assert create_loss("mm_ldam", C10, faithful=True)(z, y).item() != pytest.approx(
        create_loss("mm_ldam", C10)(z, y).item(), rel=1e-6)


# =========================================================================================
# identities
# =========================================================================================
def test_elm_with_lambda_zero_is_ldam():
    z, y, _ = sample(C100)
    w = drw_weights(C100, 1, 0)
    assert torch.equal(create_loss("elm", C100, lam=0.0, weight=w)(z, y),
                       create_loss("ldam", C100, weight=w)(z, y))


def test_elm_equals_its_softplus_form():
    z, y, _ = sample(C10, scale=1.0)
    s, lam = 30.0, 0.7
    m = torch.tensor(ref_margins(C10, 0.5), dtype=D)
    vals = []
    for r, t in zip(z, y):
        c = cstar(r.tolist(), int(t))
        others = torch.tensor([j for j in range(10) if j != int(t)])
        rho = torch.logsumexp(s * (r[others] - r[c]), 0)
        vals.append(torch.nn.functional.softplus(s * (r[c] - r[t]) + s * m[t] - s * lam * m[c]
                                                 + rho))
    torch.testing.assert_close(create_loss("elm", C10, lam=lam)(z, y), torch.stack(vals).mean())


def test_ldam_with_no_margin_and_unit_scale_is_ce():
    z, y, _ = sample(C10, scale=3.0)
    w = drw_weights(C10, 1, 0)
    torch.testing.assert_close(create_loss("ldam", C10, max_m=0.0, s=1.0, weight=w)(z, y),
                               create_loss("ce", C10, weight=w)(z, y))


def test_focal_with_gamma_zero_is_ce():
    z, y, _ = sample(C10, scale=3.0)
    torch.testing.assert_close(create_loss("focal", C10, gamma=0.0)(z, y),
                               create_loss("ce", C10)(z, y))
    w = drw_weights(C10, 1, 0)   # weighted: a plain mean of w·CE_i, not CE's weighted mean
    expect = sum(w[t] * ce_i(r, t) for r, t in zip(z.tolist(), y.tolist())) / len(y)
    assert create_loss("focal", C10, gamma=0.0, weight=w)(z, y).item() == pytest.approx(
        expect.item(), rel=1e-12)


def test_elm_wo_dy_is_elm_plus_the_target_margin():
    z, y, _ = sample(C10)
    m = class_margins(C10, 0.5)
    shifted = z + torch.nn.functional.one_hot(y, 10).to(D) * m[y][:, None]
    torch.testing.assert_close(create_loss("elm_wo_dy", C10, lam=0.5)(z, y),
                               create_loss("elm", C10, lam=0.5)(shifted, y))


# =========================================================================================
# ELM's hardest negative c*
# =========================================================================================
def test_elm_cstar_excludes_target_breaks_ties_low_and_has_no_gradient():
    counts = C10
    m = class_margins(counts, 0.5)
    z = torch.zeros(2, 10, dtype=D)
    y = torch.tensor([3, 7])
    z[0, 3] = 5.0                 # the target is the max: c* must be another class
    z[0, [1, 6]] = 2.0            # tie between 1 and 6: the lowest index wins
    z[1, [2, 4, 8]] = 1.0         # three-way tie: 2
    loss = create_loss("elm", counts, lam=1.0, s=1.0)
    expect = ref_margin_ce(z.tolist(), y.tolist(),
                           [-m[3].item() + m[1].item(), -m[7].item() + m[2].item()], 1.0)
    zz = z.clone().requires_grad_(True)
    value = loss(zz, y)
    assert value.item() == pytest.approx(expect, rel=1e-12)
    # no gradient through the choice: the gradient is that of CE with the shift held fixed
    value.backward()
    shift = torch.zeros(2, 10, dtype=D)
    shift[0, 3], shift[1, 7] = -m[3] + m[1], -m[7] + m[2]
    z2 = z.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(z2 + shift, y).backward()
    torch.testing.assert_close(zz.grad, z2.grad)


# =========================================================================================
# dtypes, devices, weights, bad input
# =========================================================================================
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_float32_and_bf16_autocast(name):
    z64, y, h64 = sample(C10, scale=1.0)
    loss = create_loss(name, C10).eval()
    loss.set_epoch(1000)
    ref = loss(z64, y, h64).item()
    got32 = loss(z64.float(), y, h64.float())
    assert got32.dtype == torch.float32 and got32.item() == pytest.approx(ref, rel=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got16 = loss(z64.to(torch.bfloat16), y, h64.to(torch.bfloat16))
    assert torch.isfinite(got16) and got16.item() == pytest.approx(ref, rel=0.1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_runs_on_cuda(name):
    z, y, h = sample(C10, dtype=torch.float32)
    on_cpu, on_gpu = create_loss(name, C10), create_loss(name, C10).cuda()
    for loss in (on_cpu, on_gpu):
        loss.set_epoch(1000)
    expect = on_cpu(z, y, h).item()
    assert on_gpu(z.cuda(), y.cuda(), h.cuda()).item() == pytest.approx(expect, rel=1e-4)


def test_set_weight_switches_to_the_weighted_reference_and_back():
    z, y, _ = sample(C10)
    loss = create_loss("elm", C10, lam=0.5)
    plain = loss(z, y).item()
    w = drw_weights(C10, 1, 0)
    loss.set_weight(w)
    assert loss(z, y).item() == pytest.approx(ref_value("elm", z, y, C10, w, lam=0.5), rel=1e-9)
    loss.set_weight(None)
    assert loss(z, y).item() == plain
    with pytest.raises(ValueError, match="does not take class weights"):
        create_loss("eqlv2", C10).set_weight(w)


def test_bad_names_and_options_are_rejected():
    with pytest.raises(ValueError, match=r"unknown loss 'elmo'; choose one of \[.*'elm'.*\]"):
        create_loss("elmo", C10)
    with pytest.raises(ValueError, match=r"\['lam'\] do not apply to loss 'ce'; it takes none"):
        create_loss("ce", C10, lam=1.0)
    with pytest.raises(ValueError, match=r"\['lamda'\] do not apply to loss 'elm'; it takes "
                                         r"\['lam', 'max_m', 's'\]"):
        create_loss("elm", C10, lamda=1.0)
    with pytest.raises(ValueError, match="s=0.0 is out of range"):
        create_loss("ldam", C10, s=0.0)
    with pytest.raises(ValueError, match="class_counts must be positive"):
        create_loss("ldam", [10, 0, 5])


def test_registry_heads():
    assert {n for n, s in LOSSES.items() if s.head == "cosine"} == {"ldam", "elm", "elm_wo_dy",
                                                                      "mm_ldam"}
