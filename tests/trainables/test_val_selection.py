"""The validation-selected epoch (docs/recipe.md, "What a result reports"): with a validation
split held out of TRAIN, every evaluation records the epoch of the best validation top-1 so far
(ties: the earliest) and the test accuracy there; it survives a resume (it lives in the
checkpointed ``best``) and a pack member reports what the trial alone reports.

Float64 on a tiny synthetic set, as tests/trainables/test_pack.py, so "equal" means 1e-10."""
import copy
import dataclasses
import math

import pytest
import torch

from test_pack import COST, TIMING, assert_close_tree  # noqa: F401  (same comparison rules)
from trainables.config import TrialConfig
from trainables.data.build import build_data
from trainables.engine import VAL_SELECTED_KEYS, Trainer
from trainables.pack import PackTrainer

BASE = dict(dataset="synthetic", img_max=20, ratio=10.0, batch_size=16, eval_batch_size=100,
            epochs=4, recipe_epochs=4, lr_milestones=(2,), lr_factors=(0.01,),
            warmup_epochs=0, device="cpu", channels_last=False, val_fraction=0.3)
CFGS = [TrialConfig(**BASE, loss="ce", seed=0),
        TrialConfig(**BASE, loss="elm", lam=0.5, drw=True, seed=2)]


@pytest.fixture(scope="module")
def data(float64):
    d = build_data(CFGS[0], torch.device("cpu"))
    assert d.val_x is not None and len(d.val_y) > 0
    small = lambda x: x[:, :, ::4, ::4].contiguous()   # noqa: E731  (32x32 -> 8x8)
    return dataclasses.replace(d, train_x=small(d.train_x), val_x=small(d.val_x),
                               test_x=small(d.test_x))


def trainer(cfg, data) -> Trainer:
    t = Trainer(cfg, data=data)
    t.forward = lambda x: t.model(x.double())   # the loader yields float32
    return t


def run(cfg, data, save_at=None, path=None) -> list[dict]:
    t = trainer(cfg, data)
    rows = []
    for m in t.epochs():
        rows.append(copy.deepcopy(m))
        if m["epoch"] == save_at:
            t.save(path)
    return rows


@pytest.fixture(scope="module")
def alone(data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("val")
    return [(run(c, data, save_at=2, path=tmp / f"t{k}.pt"), tmp / f"t{k}.pt")
            for k, c in enumerate(CFGS)]


def test_val_selected_is_the_argmax_of_val_top1_so_far_and_its_test_top1(alone):
    for rows, _ in alone:
        assert len(rows) == 4
        for i, r in enumerate(rows):
            so_far = [x["val_top1"] for x in rows[:i + 1]]
            pick = so_far.index(max(so_far))       # the first maximum: ties keep the earliest
            assert r["val_best_epoch"] == rows[pick]["epoch"]
            assert r["val_best_top1"] == rows[pick]["val_top1"]
            assert r["val_selected_test_top1"] == rows[pick]["test_top1"]
            for g in ("many", "medium", "few"):
                a, b = r[f"val_selected_test_{g}"], rows[pick][f"test_{g}"]
                assert a == b or (math.isnan(a) and math.isnan(b))
            assert r["val_split"] == "train_holdout"
            # the test-selected best is still there, beside it
            assert r["best_test_top1"] == max(x["test_top1"] for x in rows[:i + 1])


def test_resumed_from_a_mid_run_checkpoint_gives_the_uninterrupted_fields(alone, data):
    for cfg, (rows, path) in zip(CFGS, alone):
        t = trainer(cfg, data)
        t.load(path)
        assert t.epoch == 2
        resumed = list(t.epochs())
        assert [r["epoch"] for r in resumed] == [3, 4]
        for a, b in zip(resumed, rows[2:]):
            assert_close_tree({k: a[k] for k in VAL_SELECTED_KEYS + ("val_split",)},
                              {k: b[k] for k in VAL_SELECTED_KEYS + ("val_split",)})


def test_a_checkpoint_saved_before_these_fields_is_rebuilt_from_its_history(alone, data):
    cfg, (rows, path) = CFGS[0], alone[0]
    state = torch.load(path, weights_only=True)
    state["best"] = {k: state["best"][k] for k in ("best_test_top1", "best_epoch")}
    t = trainer(cfg, data)
    t.load_state_dict(state)
    resumed = list(t.epochs())
    for a, b in zip(resumed, rows[2:]):
        assert list(a) == list(b)                              # same keys, same order
        assert all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k]))
                   for k in VAL_SELECTED_KEYS)


def _untimed(m: dict) -> dict:
    return {k: v for k, v in m.items() if k != "val_images_per_s"}   # a clock, as TIMING


def test_a_pack_member_equals_the_trial_alone(alone, data):
    pack = PackTrainer(CFGS, data=data)
    packed = [copy.deepcopy(rows) for rows in pack.epochs()]
    assert len(packed) == 4
    for e, rows in enumerate(packed):
        for k, (a, _) in enumerate(alone):
            assert list(rows[k]) == list(a[e])
            assert_close_tree(_untimed(rows[k]), _untimed(a[e]), f"epoch {e} member {k}")
            assert rows[k]["val_best_epoch"] == a[e]["val_best_epoch"]


def test_without_a_validation_split_rows_have_no_such_fields(data):
    cfg = TrialConfig(**{**BASE, "val_fraction": 0.0, "epochs": 1, "recipe_epochs": 1},
                      loss="ce", seed=0)
    d = dataclasses.replace(data, val_x=None, val_y=None)
    t = trainer(cfg, d)
    m = t.fit()
    assert not any(k.startswith("val_") for k in m)
    assert set(t.best) == {"best_test_top1", "best_epoch"}
