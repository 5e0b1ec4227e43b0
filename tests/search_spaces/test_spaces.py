"""Named spaces: real trial counts (checked against Ray's own expansion), valid configs."""
from collections import Counter

import pytest
from ray.tune.search.variant_generator import generate_variants

from search_spaces import SPACES, get_space, list_spaces
from trainables.config import TrialConfig
from trainables.methods import flatten_trial, label_of, method_label

GRID_COUNTS = {"table1": 480, "table2": 15, "table3": 15, "lambda_sweep": 150,
               "margin_scale": 75, "quickstart": 6, "smoke": 4}


@pytest.mark.parametrize("name, n", GRID_COUNTS.items())
def test_trial_counts_match_rays_expansion(name, n):
    space = get_space(name)
    assert space.expected_trials == n == len(space.trial_dicts())
    ray_variants = [cfg for _, cfg in generate_variants(space.param_space)]
    assert len(ray_variants) == n
    ours = sorted(map(repr, space.trial_dicts()))
    assert ours == sorted(repr(flatten_trial(v)) for v in ray_variants)


@pytest.mark.parametrize("name", ["table1", "table2", "table3", "lambda_sweep", "margin_scale",
                                  "quickstart", "smoke", "optuna_elm"])
def test_every_trial_config_is_valid(name, monkeypatch):
    space = get_space(name)
    built = []
    real = TrialConfig.from_dict.__func__
    monkeypatch.setattr(TrialConfig, "from_dict",
                        classmethod(lambda cls, d: built.append(d) or real(cls, d)))
    space.validate()                       # builds a TrialConfig for every trial dict
    assert built == space.trial_dicts() and len(built) == (
        space.expected_trials if space.num_samples == 1 else 3)


def test_table1_has_each_paper_row_24_times_and_lambda_only_where_it_means_something():
    dicts = get_space("table1").trial_dicts()
    labels = Counter(method_label(d["loss"], d.get("drw", False), d.get("lam")) for d in dicts)
    assert len(labels) == 20 and set(labels.values()) == {24}
    assert "ELM w/o Δy (λ=0.1)" in labels and "MM-LDAM + DRW" in labels
    for d in dicts:
        assert ("lam" in d) == (d["loss"] in ("elm", "elm_wo_dy"))
    cells = Counter((d["dataset"], d["imb_type"], d["ratio"]) for d in dicts)
    assert len(cells) == 8 and set(cells.values()) == {60}


def test_lambda_sweep_values_are_exact_decimals():
    dicts = get_space("lambda_sweep").trial_dicts()
    lams = {d["lam"] for d in dicts if d["loss"] == "elm"}
    assert lams == {0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4,
                    1.5}
    assert {label_of(d) for d in dicts if d["loss"] == "ldam"} == {"LDAM", "LDAM + DRW"}
    other = get_space("lambda_sweep", dataset="cifar100", ratio=10).trial_dicts()
    assert {(d["dataset"], d["ratio"]) for d in other} == {("cifar100", 10.0)}


def test_epochs_seeds_and_overrides_reach_every_trial():
    space = get_space("table1", epochs=20, seeds=[5], overrides={"precision": "bf16"})
    assert space.expected_trials == 160
    assert all(d["epochs"] == 20 and d["seed"] == 5 and d["precision"] == "bf16"
               for d in space.trial_dicts())
    # a loss hyper-parameter goes to the methods that take it only
    dicts = get_space("quickstart", overrides={"lam": 0.9}).trial_dicts()
    assert {d.get("lam") for d in dicts if d["loss"] == "elm"} == {0.9}
    assert all("lam" not in d for d in dicts if d["loss"] != "elm")
    # an override of an axis replaces the axis
    assert get_space("table1", overrides={"dataset": "cifar100"}).expected_trials == 240


def test_bad_override_is_caught_by_validate_naming_the_field():
    with pytest.raises(ValueError, match=r"space 'table1', trial \d+ .*lam=-1\.0 is out of range"):
        get_space("table1", overrides={"lam": -1}).validate()
    with pytest.raises(ValueError, match=r"space 'smoke', trial 0 .*epochs=0 is out of range"):
        get_space("smoke", epochs=0).validate()
    with pytest.raises(ValueError,
                       match=r"space 'optuna_elm', trial 0 .*dataset='cifar11' is not valid"):
        get_space("optuna_elm", dataset="cifar11").validate()
    with pytest.raises(ValueError, match="seeds must be a non-empty list"):
        get_space("smoke", seeds=[])


def test_an_override_of_a_grid_axis_replaces_the_axis():
    space = get_space("margin_scale", overrides={"s": 30.0}, epochs=50)
    assert space.expected_trials == 15 == len(list(generate_variants(space.param_space)))
    assert "s" not in space.param_space and space.param_space["base"]["s"] == 30.0
    assert {(d["s"], d["epochs"]) for d in space.trial_dicts()} == {(30.0, 50)}
    assert {d["max_m"] for d in space.trial_dicts()} == {0.1, 0.3, 0.5, 0.7, 1.0}
    # a method's own field (drw) is overridden too, not shadowed by the method dict
    assert all(d["drw"] for d in get_space("quickstart", overrides={"drw": True}).trial_dicts())


def test_unknown_space_and_option_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown space 'tabel1'; choose one of \[.*'table1'"):
        get_space("tabel1")
    with pytest.raises(ValueError, match=r"space 'lambda_sweep' has no option\(s\) \['colour'\]; "
                                         r"its options: \['dataset', 'imb_type', 'ratio'\]"):
        get_space("lambda_sweep", colour="red")


def test_large_scale_tables_use_spec6_recipe_and_validate():
    for name, dataset in (("table2", "imagenet_lt"), ("table3", "places_lt")):
        space = get_space(name)
        space.validate()
        d = space.trial_dicts()[0]
        assert d["dataset"] == dataset and d["model"] == "resnet50" and d["epochs"] == 90
        assert d["lr_milestones"] == [50, 70, 85] and d["batch_size"] == 256


def test_list_spaces_covers_the_registry():
    listed = list_spaces()
    assert {name for name, _, _ in listed} == set(SPACES)
    assert all(n == get_space(name).expected_trials and text for name, text, n in listed)
    assert dict((name, n) for name, _, n in listed)["table1"] == 480


def test_optuna_space_builds_searcher_with_sqlite_storage_and_asha(tmp_path):
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch
    space = get_space("optuna_elm", num_samples=8, epochs=10)
    assert space.expected_trials == space.num_samples == 8
    assert space.metric == "val_top1" and space.mode == "max" and space.searcher_has_metric
    assert "grid_search" not in repr(space.param_space)       # Optuna refuses grids
    dicts = space.trial_dicts()
    assert all(d["val_fraction"] == 0.1 and d["loss"] == "elm" and d["drw"] for d in dicts)
    assert [(d["lam"], d["max_m"], d["s"]) for d in (dicts[0], dicts[-1])] == [
        (0.0, 0.05, 5.0), (1.5, 1.0, 64.0)]                    # the bounds' corners
    searcher = space.make_searcher(tmp_path / "study")
    assert isinstance(searcher, OptunaSearch)
    assert searcher._metric == "val_top1" and searcher._mode == "max"
    assert searcher._study_name == "study"
    assert searcher._storage.url == f"sqlite:///{tmp_path / 'study' / 'optuna.db'}"
    assert (tmp_path / "study" / "optuna.db").exists()
    sched = space.make_scheduler()
    assert isinstance(sched, ASHAScheduler) and sched._max_t == 10
    assert sched._time_attr == "epoch" and sched._metric == "val_top1"
    assert get_space("optuna_elm").make_scheduler()._max_t == 200     # TrialConfig's default
    assert get_space("optuna_elm").expected_trials == 40
    with pytest.raises(ValueError, match="num_samples"):
        get_space("optuna_elm", num_samples=0)
    with pytest.raises(ValueError, match="one seed"):
        get_space("optuna_elm", seeds=[0, 1])


def test_optuna_searcher_skips_results_of_a_trial_optuna_already_finished(tmp_path):
    """A driver killed after Optuna's sqlite recorded a trial as finished but before Tune's
    state did: on resume Tune reruns the trial and its results must not stop the study."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch
    space = get_space("optuna_elm", num_samples=2, epochs=4)

    def finished_elsewhere(searcher):
        searcher.set_search_properties(None, None, space.param_space)
        assert searcher.suggest("t1") is not None
        searcher._ot_study.tell(searcher._ot_trials["t1"], 50.0)   # the sqlite is ahead
        return {"val_top1": 40.0, "training_iteration": 2}

    plain = OptunaSearch(metric="val_top1", mode="max", storage=optuna.storages.RDBStorage(
        f"sqlite:///{tmp_path / 'plain.db'}"), study_name="plain")
    result = finished_elsewhere(plain)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):   # what Ray alone does
        plain.on_trial_result("t1", result)
    ours = space.make_searcher(tmp_path / "study")
    result = finished_elsewhere(ours)
    ours.on_trial_result("t1", result)                                 # skipped, no error
    ours.on_trial_complete("t1", {**result, "done": True})
    trials = optuna.load_study(study_name="study", storage=ours._storage).trials
    assert [(t.state, t.value) for t in trials] == [(optuna.trial.TrialState.COMPLETE, 50.0)]
