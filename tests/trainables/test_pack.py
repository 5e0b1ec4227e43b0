"""Trial packs (trainables/pack.py): a pack of K members equals K trials run alone.

Everything runs in float64 (torch.set_default_dtype) so that "equal" can mean 1e-10: the
fused network's grouped convolutions sum in another order than K separate ones, and float64
rounding (~1e-16) leaves that far below the tolerance; float32 would blur a real bug into
noise. The data are the synthetic dataset's images subsampled to 8x8 (and 4 test images per
class): ResNet32 runs on any size, and float64 convolutions on CPU are slow.
"""
from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch

from trainables.config import PACK_VARYING, TrialConfig, pack_split_fields
from trainables.data.build import build_data
from trainables.engine import Trainer
from trainables.losses import drw_weights
from trainables.pack import PackTrainer

TOL = 1e-10                      # absolute and relative, float64
STEPS = 3                        # parameters compared after each of the first steps
BASE = dict(dataset="synthetic", img_max=20, ratio=10.0, batch_size=16, eval_batch_size=100,
            epochs=2, recipe_epochs=2, lr_milestones=(1,), lr_factors=(0.01,),
            warmup_epochs=0, device="cpu", channels_last=False)   # DRW from epoch 1
CFGS = [TrialConfig(**BASE, loss="ce", seed=0),
        TrialConfig(**BASE, loss="ldam", drw=True, seed=1),
        TrialConfig(**BASE, loss="elm", lam=0.5, drw=True, seed=2),
        TrialConfig(**BASE, loss="eqlv2", seed=3)]
TIMING = ("train_images_per_s", "train_time_s", "test_images_per_s")
# what a trial's clock and attempts decide (trainables/cost.py): a pack's members split its
# holding, and a continued trial counts a second attempt
COST = ("cost", "cost_wall_s", "cost_cpu_s", "cost_gpu_s", "cost_share", "cost_attempts")


@pytest.fixture(scope="module")
def data(float64):
    d = build_data(CFGS[0], torch.device("cpu"))
    keep = torch.cat([torch.nonzero(d.test_y == c)[:4, 0] for c in range(d.num_classes)])
    small = lambda x: x[:, :, ::4, ::4].contiguous()   # noqa: E731  (32x32 -> 8x8)
    return dataclasses.replace(d, train_x=small(d.train_x), test_x=small(d.test_x[keep]),
                               test_y=d.test_y[keep])


def _states(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def trainer(cfg, data) -> Trainer:
    t = Trainer(cfg, data=data)
    t.forward = lambda x: t.model(x.double())   # the loader yields float32
    return t


def run_alone(cfg, data) -> dict:
    t = trainer(cfg, data)
    steps = []
    t.optimizer.register_step_post_hook(
        lambda *_: steps.append(_states(t.model)) if len(steps) < STEPS else None)
    rows, loss_state, weights = [], [], []
    for m in t.epochs():
        rows.append(copy.deepcopy(m))
        loss_state.append(copy.deepcopy(t.criterion.state_dict()))
        weights.append(None if t.criterion.weight is None else t.criterion.weight.clone())
    return {"steps": steps, "rows": rows, "loss": loss_state, "weights": weights,
            "state": copy.deepcopy(t.state_dict())}


@pytest.fixture(scope="module")
def alone(data):
    return [run_alone(c, data) for c in CFGS]


def run_pack(cfgs, data, tmp=None, poison=None) -> dict:
    pack = PackTrainer(cfgs, data=data)
    if poison is not None:      # NaN head weights: that member's loss is NaN from step 1
        pack.members[poison].head.weight.data.fill_(math.nan)
    steps = []

    def hook(*_):
        if len(steps) < STEPS:
            pack.sync()
            steps.append([_states(m.model) for m in pack.members])
    pack.optimizer.register_step_post_hook(hook)
    out = {"pack": pack, "steps": steps, "rows": [], "loss": [], "weights": [], "paths": []}
    for rows in pack.epochs():
        out["rows"].append(copy.deepcopy(rows))
        out["loss"].append([copy.deepcopy(m.criterion.state_dict()) for m in pack.members])
        out["weights"].append([None if m.criterion.weight is None else m.criterion.weight.clone()
                               for m in pack.members])
        if tmp is not None and rows[0]["epoch"] == 1:
            out["paths"] = [tmp / f"member{k}.pt" for k in range(len(cfgs))]
            for m, p in zip(pack.members, out["paths"]):
                m.save(p)
    out["states"] = [copy.deepcopy(m.state_dict()) for m in pack.members]
    return out


@pytest.fixture(scope="module")
def packed(data, tmp_path_factory):
    return run_pack(CFGS, data, tmp=tmp_path_factory.mktemp("pack"))


# ---- comparison helpers -------------------------------------------------------------
def assert_close_tree(a, b, where=""):
    """Equal structure; tensors and floats within TOL; everything else equal."""
    if isinstance(a, dict):
        assert set(a) == set(b), f"{where}: keys {sorted(set(a) ^ set(b))}"
        for k in a:
            if k not in TIMING and k not in COST and k != "provenance":
                assert_close_tree(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close_tree(x, y, f"{where}[{i}]")
    elif torch.is_tensor(a):
        assert torch.is_tensor(b) and a.shape == b.shape and a.dtype == b.dtype, where
        if a.is_floating_point():
            torch.testing.assert_close(a, b, rtol=TOL, atol=TOL, equal_nan=True, msg=where)
        else:
            assert torch.equal(a, b), where
    elif isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=TOL, abs=TOL), \
            f"{where}: {a} vs {b}"
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


# ---- what may be packed ---------------------------------------------------------------
def test_pack_key_is_shared_by_what_may_differ_and_split_by_the_rest():
    keys = {c.pack_key() for c in CFGS}
    assert len(keys) == 1 and len(next(iter(keys))) == 12
    assert len({c.trial_key() for c in CFGS}) == len(CFGS)
    assert {"seed", "loss", "lam", "drw", "drw_beta", "head"} <= PACK_VARYING
    other = CFGS[0].replace(batch_size=32, ratio=20.0)
    assert other.pack_key() != CFGS[0].pack_key()
    assert pack_split_fields(CFGS[0], other) == ["batch_size: 16 vs 32", "ratio: 10.0 vs 20.0"]
    assert pack_split_fields(CFGS[0], CFGS[2]) == []
    with pytest.raises(ValueError, match=r"trials 0 and 1 cannot share a pack; the fields "
                                         r"that split them: batch_size: 16 vs 32"):
        PackTrainer([CFGS[0], other])


@pytest.mark.parametrize("change, fragment", [
    (dict(model="resnet50"), r"model 'resnet50' cannot be packed: trial packs cover "
                             r"\['resnet32'\]"),
    (dict(workers_per_trial=2), r"cannot be packed with workers_per_trial=2"),
    (dict(compile=True), r"cannot be packed with compile=True"),
    (dict(decouple="crt", stage1="/nowhere/trial.pt"), r"cannot be packed with decouple='crt'"),
])
def test_what_the_pack_does_not_cover_is_refused_by_name(change, fragment):
    cfgs = [c.replace(**change) for c in CFGS[:2]]
    with pytest.raises(ValueError, match=fragment):
        PackTrainer(cfgs)


# ---- equal to the trials run alone ----------------------------------------------------
def test_parameters_equal_after_each_of_the_first_steps(alone, packed):
    assert len(packed["steps"]) == STEPS
    for s in range(STEPS):
        for k, a in enumerate(alone):
            assert_close_tree(packed["steps"][s][k], a["steps"][s], f"step {s} member {k}")
    # and the members did move (a pack that never stepped would pass the above at step 0)
    assert not torch.equal(packed["steps"][0][0]["conv1.weight"],
                           packed["steps"][STEPS - 1][0]["conv1.weight"])


def test_per_epoch_metrics_equal(alone, packed):
    assert len(packed["rows"]) == 2
    for e, rows in enumerate(packed["rows"]):
        for k, a in enumerate(alone):
            assert list(rows[k]) == list(a["rows"][e])           # same keys, same order
            assert_close_tree(rows[k], a["rows"][e], f"epoch {e} member {k}")
    assert [r["status"] for r in packed["rows"][-1]] == ["finished"] * len(CFGS)


def test_drw_switches_on_at_its_epoch_and_eqlv2_state_is_each_members(alone, packed, data):
    counts = data.class_counts
    for k in (1, 2):   # the DRW members: ones in epoch 0, class-balanced from epoch 1
        w0, w1 = packed["weights"][0][k], packed["weights"][1][k]
        torch.testing.assert_close(w0, torch.ones(len(counts), dtype=torch.float64))
        torch.testing.assert_close(w1, drw_weights(counts, 1, 1, 0.9999))
        assert not torch.allclose(w0, w1)
    assert packed["weights"][1][0] is None                   # CE without DRW: unweighted
    for e in range(2):
        for k, a in enumerate(alone):
            assert_close_tree(packed["loss"][e][k], a["loss"][e], f"loss state {e}/{k}")
    eql = packed["loss"][1][3]
    assert set(eql) == {"pos_grad", "neg_grad", "pos_neg"} and eql["pos_grad"].abs().sum() > 0


def test_member_state_dict_is_the_single_trials(alone, packed):
    for k, a in enumerate(alone):
        assert_close_tree(packed["states"][k], a["state"], f"state {k}")


# ---- divergence -----------------------------------------------------------------------
def test_a_diverged_member_stops_and_the_others_go_on_equal(alone, data):
    cfgs = CFGS[:3]
    out = run_pack(cfgs, data, poison=1)
    rows = out["rows"]
    assert rows[0][1]["status"] == "diverged" and rows[0][1]["done"]
    assert math.isnan(rows[0][1]["train_loss"]) and "test_top1" not in rows[0][1]
    assert rows[1][1] is None                                # stopped: nothing reported
    assert [m.status for m in out["pack"].members] == ["finished", "diverged", "finished"]
    assert out["states"][1]["epoch"] == 1 and out["states"][1]["status"] == "diverged"
    for k in (0, 2):
        for e in range(2):
            assert_close_tree(rows[e][k], alone[k]["rows"][e], f"epoch {e} member {k}")
        assert_close_tree(out["states"][k], alone[k]["state"], f"state {k}")


# ---- checkpoints ----------------------------------------------------------------------
def test_a_members_checkpoint_continues_in_an_ordinary_trainer(alone, packed, data):
    for k, cfg in enumerate(CFGS[:2]):
        t = trainer(cfg, data)
        t.load(packed["paths"][k])
        assert t.epoch == 1
        m = t.fit()
        assert_close_tree(m, alone[k]["rows"][-1], f"member {k} continued alone")
        assert_close_tree(t.state_dict(), alone[k]["state"], f"member {k} state")


def test_a_pack_resumed_from_its_members_checkpoints_continues_like_the_uninterrupted(
        packed, data):
    pack = PackTrainer(CFGS, data=data)
    for m, p in zip(pack.members, packed["paths"]):
        m.load(p)
    rows = list(pack.epochs())
    assert len(rows) == 1 and rows[0][0]["epoch"] == 2
    assert_close_tree(rows[0], packed["rows"][-1], "resumed epoch 2")
    for k, m in enumerate(pack.members):
        assert_close_tree(m.state_dict(), packed["states"][k], f"resumed state {k}")


def test_a_members_checkpoint_is_a_decoupled_first_stage_like_the_trials(packed, data, tmp_path):
    """cRT / LWS (trainables.decoupled) read a member's checkpoint as they read the trial's:
    the same second stage from member 0's epoch-1 checkpoint and from CE seed 0 trained alone
    to epoch 1."""
    from trainables.decoupled import DecoupledTrainer
    t = trainer(CFGS[0], data)
    next(iter(t.epochs()))
    t.save(tmp_path / "alone.pt")
    rows = {}
    for name, path in (("member", packed["paths"][0]), ("alone", tmp_path / "alone.pt")):
        for method in ("crt", "lws"):
            d = DecoupledTrainer(CFGS[0].replace(decouple=method, stage1=str(path)), data=data)
            forward = d.forward           # LWS scales the model's logits in its own forward
            d.forward = lambda x, f=forward: f(x.double())
            rows[name, method] = {k: v for k, v in d.fit().items() if k != "stage1"}
            assert d.static_fields["method"] == f"CE + {'cRT' if method == 'crt' else 'LWS'}"
    for method in ("crt", "lws"):
        assert rows["member", method]["status"] == "finished"
        assert_close_tree(rows["member", method], rows["alone", method], f"{method} stage 2")


def test_members_at_different_epochs_cannot_resume_together(packed, data):
    pack = PackTrainer(CFGS[:2], data=data)
    pack.members[0].load(packed["paths"][0])                 # epoch 1; member 1 at epoch 0
    with pytest.raises(ValueError, match=r"running members of a pack must be at the same "
                                         r"epoch"):
        next(pack.epochs())


# ---- the default CPU path (float32, channels_last) and the benchmark ------------------
@pytest.fixture
def float32():
    """float32 for one test, also after the module's float64 fixture has started."""
    old, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float32)
    yield
    torch.set_default_dtype(old)
    torch.set_num_threads(threads)


def test_float32_channels_last_pack_matches_separate_trials_to_float32_rounding(data, float32):
    cfgs = [c.replace(channels_last=None) for c in CFGS[:2]]   # auto: on for CPU
    pack = PackTrainer(cfgs, data=data)
    assert pack.channels_last and pack.train_epoch(max_steps=2)[0]["epoch"] == 1
    pack.sync()
    for cfg, m in zip(cfgs, pack.members):
        t = Trainer(cfg, data=data)
        t.train_epoch(max_steps=2)
        for name, v in t.model.state_dict().items():
            torch.testing.assert_close(m.model.state_dict()[name], v, rtol=1e-4,
                                       atol=1e-5, msg=name)


def test_bench_packing_measures_a_pack_and_a_trial_and_prints_its_table(float32):
    import queue
    import threading

    from bench import packing
    cfgs = packing.configs(2, "cpu", "fp32", 4)
    assert [c.loss for c in cfgs] == ["elm", "ldam"] and len({c.pack_key() for c in cfgs}) == 1
    out = queue.Queue()
    for role, group in (("pack", cfgs), ("trial", cfgs[:1])):
        packing._worker(role, group, 1, 1, 0, threading.Barrier(1), out)
        rate, mem = out.get_nowait()
        assert rate > 0 and mem is None
    rows = {k: {"separate": {"images_per_s": 10.0 * k ** 0.5, "gpu_gib": None},
                "pack": {"images_per_s": 8.0 * k, "gpu_gib": None}} for k in (1, 4)}
    text = packing.table(rows, cuda=False)
    assert "pack/separate" in text and rows[4]["pack"]["ratio_vs_one_trial"] == 3.2
    assert rows[4]["pack_vs_separate"] == pytest.approx(1.6)


def test_a_step_warm_up_pack_equals_its_trials_alone(data):
    """warmup_unit step sets the LR before every step (issue 37's demo): a pack sets it for all
    its members as each trial alone does (a pack that set it once per epoch would train its
    second and later steps at the first step's LR, and differ from step 2 on)."""
    base = {**BASE, "warmup_epochs": 1, "warmup_unit": "step", "min_warmup_steps": 3}
    cfgs = [TrialConfig(**base, loss="ce", seed=0),
            TrialConfig(**base, loss="elm", lam=0.5, drw=True, seed=2)]
    assert cfgs[0].schedule()["warmup_steps"] >= STEPS      # the compared steps are warm-up
    alone = [run_alone(c, data) for c in cfgs]
    packed = run_pack(cfgs, data)
    for s in range(STEPS):
        for k, a in enumerate(alone):
            assert_close_tree(packed["steps"][s][k], a["steps"][s], f"step {s} member {k}")
    for e, rows in enumerate(packed["rows"]):
        for k, a in enumerate(alone):
            assert_close_tree(rows[k], a["rows"][e], f"epoch {e} member {k}")
