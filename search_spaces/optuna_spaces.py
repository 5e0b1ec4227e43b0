"""Searches with Optuna (TPE) and ASHA, selecting on a validation split of the TRAIN data."""
from __future__ import annotations

import math
from pathlib import Path

from search_spaces.base import DESCRIPTIONS, StudySpace, apply_common, options, register_space
from trainables.config import LARGE_SCALE_DATASETS, LARGE_SCALE_RECIPE, TrialConfig

BOUNDS = {"lam": (0.0, 1.5), "max_m": (0.05, 1.0), "s": (5.0, 64.0)}   # s searched in log


@register_space("optuna_elm", "Optuna TPE + ASHA over λ, max_m, s (log) for ELM + DRW, "
                "selecting on val_top1 from a 10 % hold-out of the training set")
@options("num_samples", "dataset", "imb_type", "ratio", "sampler_seed")
def optuna_elm(*, epochs, seeds, overrides, num_samples=40, dataset="cifar10", imb_type="lt",
               ratio=100.0, sampler_seed=0) -> StudySpace:
    from ray import tune
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"optuna_elm: option num_samples must be an integer >= 1, "
                         f"got {num_samples!r}")
    base = {"dataset": dataset, "imb_type": imb_type, "ratio": float(ratio), "loss": "elm",
            "drw": True, "val_fraction": 0.1, "seed": 0}
    space = apply_common({"base": base}, epochs=epochs, seeds=seeds, overrides=overrides)
    if "seed" in space and isinstance(space["seed"], dict):
        raise ValueError("optuna_elm takes one seed (Optuna cannot be combined with grids)")
    space.update({k: v for k, v in {
        "lam": tune.uniform(*BOUNDS["lam"]), "max_m": tune.uniform(*BOUNDS["max_m"]),
        "s": tune.loguniform(*BOUNDS["s"])}.items() if k not in space["base"]})
    # the run's real length: TrialConfig's default, or SPEC 6's 90 for a large-scale dataset
    # (read, not built: a bad base is validate()'s to report, with the space's name)
    b = space["base"]
    total_epochs = b.get("epochs") or (LARGE_SCALE_RECIPE["epochs"]
                                        if b.get("dataset") in LARGE_SCALE_DATASETS
                                        else TrialConfig.__dataclass_fields__["epochs"].default)

    def make_searcher(study_dir: Path):
        import optuna

        from search_spaces.optuna_resumable import ResumableOptunaSearch
        study_dir.mkdir(parents=True, exist_ok=True)
        storage = optuna.storages.RDBStorage(f"sqlite:///{study_dir / 'optuna.db'}")
        return ResumableOptunaSearch(metric="val_top1", mode="max", storage=storage,
                            study_name=study_dir.name,
                            sampler=optuna.samplers.TPESampler(seed=int(sampler_seed)))

    def make_scheduler():
        from ray.tune.schedulers import ASHAScheduler
        return ASHAScheduler(time_attr="epoch", metric="val_top1", mode="max",
                             max_t=total_epochs, grace_period=max(1, total_epochs // 10))

    # what the CLI validates before Ray starts: the low and high corners and the midpoint
    # (geometric for s, which is searched in log)
    mid = {"lam": sum(BOUNDS["lam"]) / 2, "max_m": sum(BOUNDS["max_m"]) / 2,
           "s": math.sqrt(BOUNDS["s"][0] * BOUNDS["s"][1])}
    points = [{k: lo for k, (lo, _) in BOUNDS.items()}, mid,
              {k: hi for k, (_, hi) in BOUNDS.items()}]
    samples = [{**space["base"], **{k: v for k, v in p.items() if k not in space["base"]}}
               for p in points]
    return StudySpace("optuna_elm", DESCRIPTIONS["optuna_elm"], space, int(num_samples),
                      metric="val_top1", num_samples=int(num_samples),
                      make_searcher=make_searcher, make_scheduler=make_scheduler,
                      searcher_has_metric=True, sample_dicts=samples)
