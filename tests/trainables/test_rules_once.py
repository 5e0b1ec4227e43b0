"""Each rule in one place (issue 39): which hyper-parameters a loss takes, the decoupled and
margin-analysis defaults, the config's public coercion, the raw-data cache."""
from __future__ import annotations

import ast
import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from trainables.config import (DECOUPLE_RECIPE, LOSS_HPARAMS, MARGIN_DEFAULTS, TrialConfig,
                               coerce_value, field_kinds)
from trainables.losses import LOSSES, create_loss, losses_taking, takes_hparam

REPO = Path(__file__).resolve().parents[2]
COUNTS = [50, 20, 5]


# ---- which hyper-parameters a loss takes -------------------------------------------------
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_the_hparam_table_is_each_loss_constructors_keywords(name):
    """A loss's registered defaults name exactly the keyword-only parameters its class takes
    (class_counts and weight are every loss's): a loss that grew a parameter without a
    registered default, or a default its constructor drops, fails here."""
    spec = LOSSES[name]
    params = inspect.signature(spec.cls.__init__).parameters
    keywords = {p for p, v in params.items() if v.kind is inspect.Parameter.KEYWORD_ONLY}
    assert keywords == set(spec.defaults), name
    assert {p for p, v in params.items() if v.kind is not inspect.Parameter.KEYWORD_ONLY} \
        == {"self", "class_counts", "weight"}, name
    for k in LOSS_HPARAMS:
        assert takes_hparam(name, k) == (k in spec.defaults) == spec.takes(k)


def test_the_config_fields_are_the_hparams_some_loss_takes():
    """LOSS_HPARAMS (TrialConfig's loss fields) is the union of the registered tables: a field
    no loss takes, or a hyper-parameter TrialConfig cannot set, fails here."""
    assert set(LOSS_HPARAMS) == {k for spec in LOSSES.values() for k in spec.defaults}
    assert set(LOSS_HPARAMS) <= {f.name for f in dataclasses.fields(TrialConfig)}
    for k in LOSS_HPARAMS:
        assert losses_taking(k) == sorted(n for n in LOSSES if takes_hparam(n, k))


def test_an_unknown_loss_is_refused_listing_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown loss 'nope'; choose one of \[.*'elm'"):
        takes_hparam("nope", "lam")


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_config_factory_and_study_files_ask_the_same_rule(name):
    """For every (loss, hyper-parameter): TrialConfig accepts it, create_loss builds it and a
    study file's method takes it exactly when takes_hparam says so."""
    from search_spaces.studyfile import Context, StudyFileError, parse_method
    for k in LOSS_HPARAMS:
        value = LOSSES[losses_taking(k)[0]].defaults[k]     # of the field's type
        takes = takes_hparam(name, k)
        try:
            TrialConfig(loss=name, **{k: value})
            ok = True
        except ValueError as e:
            assert f"{k} does not apply to loss '{name}'" in str(e)
            ok = False
        assert ok == takes, (name, k)
        try:
            create_loss(name, COUNTS, **{k: value})
            ok = True
        except ValueError as e:
            assert "do not apply" in str(e)
            ok = False
        assert ok == takes, (name, k)
        try:
            parse_method(Context("f.yaml"), {"loss": name, k: value})
            ok = True
        except StudyFileError as e:
            assert f"{k} does not apply to loss '{name}'" in str(e)
            ok = False
        assert ok == takes, (name, k)


def test_no_caller_reads_a_loss_s_defaults_to_decide_whether_it_takes_a_hparam():
    """``k in LOSSES[x].defaults`` is takes_hparam's body; every other module asks it."""
    bad = []
    for pkg in ("trainables", "search_spaces"):
        for path in (REPO / pkg).rglob("*.py"):
            if path == REPO / "trainables" / "losses" / "registry.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Compare) and any(
                        isinstance(op, (ast.In, ast.NotIn)) for op in node.ops) and any(
                        isinstance(c, ast.Attribute) and c.attr == "defaults"
                        for c in node.comparators):
                    bad.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not bad, bad


# ---- numeric defaults live in trainables.config ------------------------------------------
def test_decoupled_and_margin_defaults_keep_their_values():
    r = DECOUPLE_RECIPE
    assert (r.crt_epochs, r.lws_epochs, r.paper_lr, r.paper_batch, r.weight_decay, r.momentum,
            r.sampling_stream) == (10, 5, 0.2, 512, 5e-4, 0.9, 424_242)
    assert r.epochs("crt") == 10 and r.epochs("lws") == 5 and r.lr(128) == 0.2 * 128 / 512
    assert (MARGIN_DEFAULTS.lam, MARGIN_DEFAULTS.max_m, MARGIN_DEFAULTS.sample_seed) == \
        (0.0, 0.5, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.crt_epochs = 3


@pytest.mark.parametrize("method, epochs", [("crt", 10), ("lws", 5)])
def test_the_second_stage_schedule_is_the_recipes(method, epochs):
    from trainables.decoupled import stage2_config
    s1 = TrialConfig(dataset="synthetic", epochs=20, recipe_epochs=200, batch_size=64)
    cfg = s1.replace(decouple=method, stage1="x")
    s2 = stage2_config(cfg, s1)
    assert s2.epochs == max(1, s1.scale_epoch(epochs)) == 1
    assert s2.lr == 0.2 * 64 / 512 and s2.weight_decay == 5e-4 and s2.momentum == 0.9
    assert all(getattr(s2, k) is None for k in LOSS_HPARAMS) and s2.loss == "ce"
    s2 = stage2_config(cfg.replace(decouple_epochs=100, decouple_lr=0.05), s1)
    assert s2.epochs == 10 and s2.lr == 0.05


def test_decoupled_and_margins_hold_no_numeric_default_of_their_own():
    """The numbers that change results are read from trainables.config: no float literal and
    no int literal other than 0/1 is left in stage2_config, the balanced draw or the margins."""
    from analysis import margins
    from trainables import decoupled
    found = []
    for fn in (decoupled.stage2_config, decoupled.ClassBalancedLoader.draw,
               margins.effective_margins):
        for node in ast.walk(ast.parse(inspect.getsource(fn).lstrip())):
            if isinstance(node, ast.Constant) and type(node.value) in (int, float) \
                    and node.value not in (0, 1):
                found.append(f"{fn.__qualname__}: {node.value!r}")
    from analysis import forward                 # the one forward pass draws the sample
    src = inspect.getsource(forward.forward_pass)
    assert "default_rng(0)" not in src and "MARGIN_DEFAULTS.sample_seed" in src
    assert not found, found


# ---- the config's coercion is public ----------------------------------------------------
def test_study_files_use_the_configs_public_coercion():
    f = {x.name: x for x in dataclasses.fields(TrialConfig)}
    assert coerce_value(f["ratio"], 10) == 10.0 and isinstance(coerce_value(f["ratio"], 10),
                                                               float)
    assert field_kinds(f["lam"]) == {float, type(None)}
    with pytest.raises(ValueError, match="config key 'epochs' expects int"):
        coerce_value(f["epochs"], "ten")
    private = []
    for path in (REPO / "search_spaces").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("trainables"):
                private += [f"{path.name}: {a.name}" for a in node.names
                            if a.name.startswith("_")]
    assert not private, private


# ---- the raw-data cache -----------------------------------------------------------------
def test_importing_build_leaves_no_module_level_cache_filled():
    """The raw-read cache is an lru_cache on a function: a fresh import holds no read, and the
    module keeps no dict/list/set that could hold one."""
    code = ("import trainables.data.build as b\n"
            "state = sorted(k for k, v in vars(b).items() if not k.startswith('__')\n"
            "               and type(v) in (dict, list, set, bytearray))\n"
            "print(b._read_once.cache_info().currsize, state)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout
    assert out.strip() == "0 []"


def test_raw_reads_are_keyed_by_dataset_and_absolute_folder(tmp_path, monkeypatch):
    from trainables.data import build
    from trainables.data.registry import get_dataset
    calls = []
    info = get_dataset("synthetic")
    build._read_once.cache_clear()
    real = type(info).read
    monkeypatch.setattr(type(info), "read", lambda self, r, d: calls.append(r) or real(self, r, d))
    monkeypatch.chdir(tmp_path)
    try:
        for root, download in (("data", False), (str(tmp_path / "data"), True),
                               ("other", False)):
            build.read_raw(info, root, download)
    finally:
        build._read_once.cache_clear()
    assert calls == ["data", "other"]      # one folder spelt twice is one read
