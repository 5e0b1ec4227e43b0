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
    """mean_i −log softmax(z_i + shift)_{y_i}; with w: Σ w_y ℓ / Σ w_y (torch's mean)."""
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


# =========================================================================================
# decoupled second stage (cRT, LWS)
# =========================================================================================
TINY = dict(dataset="synthetic", ratio=10.0, img_max=30, batch_size=32, eval_batch_size=200,
            epochs=1, device="cpu")     # recipe_epochs stays 200: stage 2 scales to 1 epoch


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    from trainables.engine import Trainer
    trainer = Trainer(TrialConfig(**TINY))
    trainer.fit()
    path = tmp_path_factory.mktemp("s1") / "checkpoint_000001" / "trial.pt"
    path.parent.mkdir()
    trainer.save(path)
    return path, trainer.model.state_dict()


def test_class_balanced_loader_draws_classes_uniformly():
    from trainables.data.loader import DeviceLoader
    from trainables.decoupled import ClassBalancedLoader
    y = torch.repeat_interleave(torch.arange(4), torch.tensor([1000, 100, 10, 2]))
    x = torch.zeros(len(y), 1, 2, 2, dtype=torch.uint8)
    loader = ClassBalancedLoader(DeviceLoader(x, y, 500, (0.5,), (0.25,), augment=False,
                                              shuffle=False), 4, seed=0)
    loader.set_epoch(3)
    drawn = torch.cat([b for _, b in loader])
    assert len(drawn) == len(y)
    freq = torch.bincount(drawn, minlength=4).double() / len(y)
    assert (freq - 0.25).abs().max() < 0.03          # 1112 draws: 3 sd ≈ 0.039
    loader.set_epoch(3)
    again = torch.cat([b for _, b in loader])
    assert torch.equal(drawn, again)                 # (seed, epoch) decide the draw


@pytest.mark.parametrize("method", ["crt", "lws"])
def test_decoupled_stage_trains_only_what_it_should(stage1, method):
    from trainables.decoupled import DecoupledTrainer
    path, s1_state = stage1
    cfg = TrialConfig(**TINY, decouple=method, stage1=str(path.parent.parent))
    trainer = DecoupledTrainer(cfg)
    m = trainer.fit()
    assert trainer.cfg.epochs == 1                   # 10 (or 5) of 200 recipe epochs -> >= 1
    assert trainer.cfg.lr == pytest.approx(0.2 * 32 / 512)
    assert m["status"] == "finished" and "test_macro_f1" in m
    assert trainer.static_fields["method"] == f"CE + {'cRT' if method == 'crt' else 'LWS'}"
    after = trainer.model.state_dict()
    for k, v in s1_state.items():
        same = torch.equal(v, after[k])
        if k.startswith("linear.") and method == "crt":
            assert not same, k                       # re-initialised and re-trained
        else:
            assert same, k                           # backbone, BN statistics, LWS classifier
    if method == "lws":
        assert not torch.equal(after["lws_scale"], torch.ones(10))


def test_decoupled_config_errors_name_the_field(stage1, tmp_path):
    path, _ = stage1
    with pytest.raises(ValueError, match="stage1"):
        TrialConfig(**TINY, decouple="crt")
    with pytest.raises(ValueError, match="decouple='x' is not valid"):
        TrialConfig(**TINY, decouple="x", stage1=str(path))
    from trainables.decoupled import DecoupledTrainer
    with pytest.raises(ValueError, match="ratio=20.0 differs from the first stage's 10.0"):
        DecoupledTrainer(TrialConfig(**{**TINY, "ratio": 20.0}, decouple="crt",
                                     stage1=str(path)))
    with pytest.raises(ValueError, match="no checkpoint_"):
        DecoupledTrainer(TrialConfig(**TINY, decouple="lws", stage1=str(tmp_path)))
