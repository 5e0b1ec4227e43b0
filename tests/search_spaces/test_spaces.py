"""Study files: the shipped ones resolve to the paper's grids (written out independently here),
command-line changes, ranges, Ray's own expansion, searches; bad files in test_study_files."""
import itertools
from collections import Counter

import pytest
from ray.tune.search.variant_generator import generate_variants

from search_spaces import SPACES, get_space, list_spaces
from search_spaces.studyfile import Context, StudyFileError, parse_range
from trainables.config import LARGE_SCALE_RECIPE, TrialConfig
from trainables.methods import TABLE1_METHODS, TABLE23_METHODS, flatten_trial, label_of, method

GRID_COUNTS = {"table1": 480, "table2": 15, "table3": 15, "lambda_sweep": 150,
               "margin_scale": 75, "quickstart": 9, "smoke": 4, "ratio_sweep": 48}
LAMBDAS = [round(i * 0.1, 1) for i in range(16)]


def product(base, methods, **axes):
    """The grid as the former Python spaces built it: base × axes × methods."""
    names = list(axes)
    return [{**base, **dict(zip(names, cell)), **m}
            for cell in itertools.product(*axes.values()) for m in methods]


def reference(name):
    """Each shipped study, written as the Python spaces of the previous release did."""
    where = {"dataset": "cifar10", "imb_type": "lt", "ratio": 100.0}
    if name == "table1":
        return product({}, TABLE1_METHODS, dataset=["cifar10", "cifar100"],
                       imb_type=["lt", "step"], ratio=[10.0, 100.0], seed=[0, 1, 2])
    if name in ("table2", "table3"):
        ds = "imagenet_lt" if name == "table2" else "places_lt"
        return product({"dataset": ds, **LARGE_SCALE_RECIPE, "seed": 0}, TABLE23_METHODS)
    if name == "lambda_sweep":
        methods = ([method("elm", lam=v) for v in LAMBDAS]
                   + [method("elm", True, lam=v) for v in LAMBDAS]
                   + [method("elm_wo_dy", lam=v) for v in LAMBDAS]
                   + [method("ldam"), method("ldam", True)])
        return product(where, methods, seed=[0, 1, 2])
    if name == "margin_scale":
        return product({**where, "loss": "elm", "drw": True, "lam": 0.5}, [{}],
                       max_m=[0.1, 0.3, 0.5, 0.7, 1.0], s=[10.0, 20.0, 30.0, 40.0, 64.0],
                       seed=[0, 1, 2])
    if name == "quickstart":
        return product({"dataset": "fashion_mnist", "imb_type": "lt", "ratio": 100.0,
                        "img_max": 750, "epochs": 10, "eval_every": 10, "checkpoint_every": 5,
                        "batch_size": 128, "warmup_unit": "step"},
                       [method("ce"), method("ldam", True), method("elm", True, lam=0.5)],
                       seed=[0, 1, 2])
    if name == "smoke":
        return product({"dataset": "synthetic", "ratio": 10.0, "img_max": 40, "epochs": 2,
                        "eval_every": 1,
                        "checkpoint_every": 1, "batch_size": 32, "eval_batch_size": 200,
                        "device": "cpu"}, [method("ce"), method("elm", True, lam=0.5)],
                       seed=[0, 1])
    if name == "ratio_sweep":   # the example, as written there
        return product({"dataset": "cifar10", "imb_type": "lt", "epochs": 200},
                       [method("ce"), method("ldam", True), method("elm", True, lam=0.5),
                        method("elm_wo_dy", lam=1.0)], ratio=[10.0, 50.0, 100.0, 200.0],
                       seed=[0, 1, 2])
    raise KeyError(name)


def config_set(dicts):
    return Counter(repr(sorted(TrialConfig.from_dict(d).to_dict().items())) for d in dicts)


@pytest.mark.parametrize("name", GRID_COUNTS)
def test_shipped_study_files_resolve_to_the_same_trial_configs(name):
    space = get_space(name)
    assert space.expected_trials == GRID_COUNTS[name] == len(space.trial_dicts())
    assert config_set(space.trial_dicts()) == config_set(reference(name))


@pytest.mark.parametrize("name", GRID_COUNTS)
def test_trial_counts_match_rays_expansion(name):
    space = get_space(name)
    variants = [flatten_trial(cfg) for _, cfg in generate_variants(space.param_space)]
    assert sorted(map(repr, variants)) == sorted(map(repr, space.trial_dicts()))


def test_every_shipped_study_is_listed_and_valid():
    listed = {name: (text, n) for name, text, n in list_spaces()}
    assert set(listed) == set(SPACES) >= set(GRID_COUNTS) | {"optuna_elm"}
    for name, (text, n) in listed.items():
        space = get_space(name)
        space.validate()
        assert text and n == space.expected_trials


def test_table1_has_each_paper_row_24_times_and_lambda_only_where_it_means_something():
    dicts = get_space("table1").trial_dicts()
    labels = Counter(label_of(d) for d in dicts)
    assert len(labels) == 20 and set(labels.values()) == {24}
    for d in dicts:
        assert ("lam" in d) == (d["loss"] in ("elm", "elm_wo_dy"))
    assert len(set(get_space("table1").trial_keys())) == 480


def test_ranges_are_inclusive_and_exact_decimals():
    ctx = Context("t")
    assert parse_range(ctx, "0:1.5:0.1") == LAMBDAS
    assert parse_range(ctx, "0..2") == [0, 1, 2]
    assert parse_range(ctx, "10:50:20") == [10, 30, 50]
    assert parse_range(ctx, "1,3..4,0:0.2:0.1") == ["1", 3, 4, 0.0, 0.1, 0.2]
    for bad in ("0:1:0.3", "2..1", "0..", "1:2", "a:b:c", "0:1:0"):
        with pytest.raises(StudyFileError, match="range"):
            parse_range(ctx, bad)


def test_grid_on_a_loss_hyperparameter_changes_only_the_methods_that_take_it():
    before = get_space("lambda_sweep").trial_dicts()
    after = get_space("lambda_sweep", axes={"lam": "0,0.5,1.0"}).trial_dicts()
    assert len(after) == 33          # (3 ELM methods × 3 λ + LDAM, LDAM + DRW) × 3 seeds
    assert {d["lam"] for d in after if "lam" in d} == {0.0, 0.5, 1.0}
    ldam = [d for d in after if d["loss"] == "ldam"]
    assert config_set(ldam) == config_set([d for d in before if d["loss"] == "ldam"])
    assert all("lam" not in d for d in ldam)
    # on a study with CE too: CE rows once, ELM rows per λ
    dicts = get_space("quickstart", axes={"lam": "0.1,0.9"}).trial_dicts()
    assert Counter(label_of(d) for d in dicts) == {
        "CE": 3, "LDAM + DRW": 3, "ELM + DRW (λ=0.1)": 3, "ELM + DRW (λ=0.9)": 3}


def test_grid_adds_or_replaces_axes_and_seeds_epochs_set_reach_every_trial():
    space = get_space("table1", epochs=20, seeds=[5], overrides={"precision": "bf16"})
    assert space.expected_trials == 160
    assert all(d["epochs"] == 20 and d["seed"] == 5 and d["precision"] == "bf16"
               for d in space.trial_dicts())
    ratios = get_space("smoke", axes={"ratio": "10,50,100"})
    assert ratios.expected_trials == 12 and {d["ratio"] for d in ratios.trial_dicts()} == {
        10.0, 50.0, 100.0}
    assert get_space("table1", overrides={"dataset": "cifar100"}).expected_trials == 240
    dicts = get_space("quickstart", overrides={"lam": 0.9}).trial_dicts()
    assert {d.get("lam") for d in dicts if d["loss"] == "elm"} == {0.9}
    assert all("lam" not in d for d in dicts if d["loss"] != "elm")
    space = get_space("margin_scale", overrides={"s": 30.0}, epochs=50)   # an axis replaced
    assert space.expected_trials == 15
    assert {(d["s"], d["epochs"]) for d in space.trial_dicts()} == {(30.0, 50)}
    assert all(d["drw"] for d in get_space("quickstart", overrides={"drw": True}).trial_dicts())


def test_large_scale_tables_use_the_large_scale_recipe():
    for name, dataset in (("table2", "imagenet_lt"), ("table3", "places_lt")):
        cfg = get_space(name).configs()[0]
        assert cfg.dataset == dataset and cfg.model == "resnet50" and cfg.epochs == 90
        assert cfg.lr_milestones == (50, 70, 85) and cfg.batch_size == 256


def test_optuna_study_file_builds_searcher_with_sqlite_storage_and_asha(tmp_path):
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch
    space = get_space("optuna_elm", num_samples=8, epochs=10)
    assert space.expected_trials == space.num_samples == 8 and space.is_search
    assert space.metric == "val_top1" and space.mode == "max" and space.searcher_has_metric
    assert "grid_search" not in repr(space.param_space)       # Optuna refuses grids
    dicts = space.trial_dicts()
    assert all(d["val_fraction"] == 0.1 and d["loss"] == "elm" and d["drw"] for d in dicts)
    assert [(d["lam"], d["max_m"], d["s"]) for d in (dicts[0], dicts[-1])] == [
        (0.0, 0.05, 5.0), (1.5, 1.0, 64.0)]                    # the bounds' corners
    searcher = space.make_searcher(tmp_path / "study")
    assert isinstance(searcher, OptunaSearch)
    assert searcher._metric == "val_top1" and searcher._mode == "max"
    assert searcher._storage.url == f"sqlite:///{tmp_path / 'study' / 'optuna.db'}"
    sched = space.make_scheduler()
    assert isinstance(sched, ASHAScheduler) and sched._max_t == 10
    assert sched._time_attr == "epoch" and sched._metric == "val_top1"
    assert get_space("optuna_elm").make_scheduler()._max_t == 200     # TrialConfig's default
    random = get_space("optuna_elm", sampler="random").make_searcher(tmp_path / "r")
    import optuna
    assert isinstance(random._sampler, optuna.samplers.RandomSampler)
    with pytest.raises(StudyFileError, match="num_samples"):
        get_space("optuna_elm", num_samples=0)
    with pytest.raises(StudyFileError, match="cannot also have grid axes"):
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


def test_trial_key_ignores_runtime_fields_and_follows_what_changes_results(monkeypatch):
    from trainables.losses import LOSSES
    cfg = TrialConfig(loss="elm", drw=True, lam=0.5, seed=1)
    same = [cfg.replace(device="cpu", data_root="/elsewhere", checkpoint_every=3,
                        eval_batch_size=7, compile=True, num_workers=0),
            TrialConfig.from_dict({**cfg.to_dict(), "head": "cosine", "s": 30.0})]
    assert {c.trial_key() for c in same} == {cfg.trial_key()}
    for change in ({"epochs": 100}, {"lam": 0.6}, {"seed": 2}, {"data_seed": 1},
                   {"ratio": 10.0}, {"precision": "bf16"}, {"lr": 0.05}, {"drw": False}):
        assert cfg.replace(**change).trial_key() != cfg.trial_key(), change
    before = TrialConfig(loss="ldam").trial_key()
    monkeypatch.setitem(LOSSES["ldam"].defaults, "max_m", 0.6)   # a loss default changes
    assert TrialConfig(loss="ldam").trial_key() != before
