"""One trial state (trainables/trial_state.py, issue 39): a Trainer and a trial pack's member
are the same TrialState, so their bookkeeping and checkpoints cannot drift apart, and the
trainers reach each other only through public names."""
from __future__ import annotations

import ast
import dataclasses
import math
from pathlib import Path

import pytest
import torch

from trainables.config import TrialConfig
from trainables.data.build import build_data
from trainables.engine import Trainer
from trainables.pack import Member, PackTrainer
from trainables.trial_state import TrialState

ROOT = Path(__file__).resolve().parents[2]
BASE = dict(dataset="synthetic", img_max=20, ratio=10.0, batch_size=16, eval_batch_size=100,
            epochs=2, recipe_epochs=2, lr_milestones=(1,), lr_factors=(0.01,),
            warmup_epochs=0, device="cpu", channels_last=False, val_fraction=0.3)
CFGS = [TrialConfig(**BASE, loss="ce", seed=0),
        TrialConfig(**BASE, loss="ldam", drw=True, seed=1)]
# the checkpoint's keys (trainables.checkpoints): old checkpoints are read by these names
CHECKPOINT_KEYS = {"format", "config", "epoch", "status", "best", "last_metrics", "history",
                   "model", "optimizer", "loss", "rng", "provenance", "cost"}
SHARED = ("build", "start_epoch", "train_row", "eval_due", "finish_epoch", "save", "load")


@pytest.fixture(scope="module")
def data():
    d = build_data(CFGS[0], torch.device("cpu"))
    small = lambda x: x[:, :, ::4, ::4].contiguous()   # noqa: E731  (32x32 -> 8x8: fast)
    return dataclasses.replace(d, train_x=small(d.train_x), val_x=small(d.val_x),
                               test_x=small(d.test_x))


@pytest.fixture(scope="module")
def one_epoch(data):
    """(a Trainer, a pack) of CFGS after one epoch (evaluated: eval_every 1)."""
    t = Trainer(CFGS[1], data=data)
    next(t.epochs())
    pack = PackTrainer(CFGS, data=data)
    next(pack.epochs())
    return t, pack


def test_a_trainer_and_a_pack_member_are_one_trial_state(one_epoch):
    t, pack = one_epoch
    for trial in (t, *pack.members):
        assert isinstance(trial, TrialState)
        for name in SHARED:   # neither re-implements the bookkeeping
            assert getattr(type(trial), name) is getattr(TrialState, name), name
    # a member's checkpoint is TrialState's too, after the pack has synced it
    assert Trainer.state_dict is TrialState.state_dict
    assert Trainer.load_state_dict is TrialState.load_state_dict
    assert Member.state_dict is not TrialState.state_dict   # its sync() first


def test_their_state_dicts_have_the_same_keys_after_an_epoch(one_epoch):
    t, pack = one_epoch
    alone, member = t.state_dict(), pack.members[1].state_dict()
    assert set(alone) == set(member) == CHECKPOINT_KEYS
    for key in ("best", "last_metrics", "cost", "rng", "model", "loss"):
        assert set(alone[key]) == set(member[key]), key
    assert [list(h) for h in alone["history"]] == [list(h) for h in member["history"]]
    assert alone["epoch"] == member["epoch"] == 1 and member["status"] == "running"
    assert "val_best_epoch" in member["best"]                # the validation split's fields


def test_a_members_state_loads_into_a_trainer_and_back(one_epoch, data):
    _, pack = one_epoch
    state = pack.members[1].state_dict()
    t = Trainer(CFGS[1], data=data)
    t.load_state_dict(state)
    assert (t.epoch, t.status, t.history, t.last_metrics) == \
        (state["epoch"], state["status"], state["history"], state["last_metrics"])
    again = t.state_dict()
    assert again["best"] == state["best"] and not math.isnan(again["best"]["val_best_top1"])
    # and back into a fresh pack's member: the pack re-fuses before it trains on
    other = PackTrainer(CFGS, data=data)
    for m, s in zip(other.members, (pack.members[0].state_dict(), again)):
        m.load_state_dict(s)
    rows = next(other.epochs())
    assert [r["epoch"] for r in rows] == [2, 2] and all(r["done"] for r in rows)


# ---- only public names cross a module --------------------------------------------------
FILES = ("trainables/engine.py", "trainables/pack.py", "trainables/trial_state.py")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


PACKAGES = ("trainables", "search_spaces", "study", "analysis", "bench")


def test_no_private_name_is_imported_from_another_module():
    """No ``from <package>.x import _name`` anywhere in the five packages (engine's ``_plain``
    was pack's before; losses' ``_counts``, diagnostics' ``_grid``, bench's ``_cli`` and
    ``_sync`` were others' until this test went project-wide)."""
    bad = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            tree = ast.parse(path.read_text())
            bad += [f"{path.relative_to(ROOT)}:{node.lineno}: {node.module}.{a.name}"
                    for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                    and (node.level or (node.module or "").split(".")[0] in PACKAGES)
                    for a in node.names if _private(a.name)]
    assert bad == []


@pytest.mark.parametrize("path", FILES)
def test_no_private_attribute_of_another_object_is_used(path):
    """``x._name`` only for x = self: a member tells its pack through a public method
    (``mark_members_changed``), not by setting the pack's flag."""
    tree = ast.parse((ROOT / path).read_text())
    bad = [f"{node.lineno}: {ast.unparse(node)}" for node in ast.walk(tree)
           if isinstance(node, ast.Attribute) and _private(node.attr)
           and not (isinstance(node.value, ast.Name) and node.value.id == "self")]
    assert bad == []
