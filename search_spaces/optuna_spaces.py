"""Searches with Optuna (TPE) and ASHA, selecting on a validation split of the TRAIN data."""
from __future__ import annotations

from pathlib import Path

from search_spaces.base import DESCRIPTIONS, StudySpace, apply_common, options, register_space

BOUNDS = {"lam": (0.0, 1.5), "max_m": (0.05, 1.0), "s": (5.0, 64.0)}   # s searched in log


@register_space("optuna_elm", "Optuna TPE + ASHA over λ, max_m, s (log) for ELM + DRW, "
                "selecting on val_top1 from a 10 % hold-out of the training set")
@options("num_samples", "dataset", "imb_type", "ratio", "sampler_seed")
def optuna_elm(*, epochs, seeds, overrides, num_samples=40, dataset="cifar10", imb_type="lt",
               ratio=100.0, sampler_seed=0) -> StudySpace:
    from ray import tune
    base = {"dataset": dataset, "imb_type": imb_type, "ratio": float(ratio), "loss": "elm",
            "drw": True, "val_fraction": 0.1, "seed": 0}
    space = apply_common({"base": base}, epochs=epochs, seeds=seeds, overrides=overrides)
    if "seed" in space and isinstance(space["seed"], dict):
        raise ValueError("optuna_elm takes one seed (Optuna cannot be combined with grids)")
    space.update({k: v for k, v in {
        "lam": tune.uniform(*BOUNDS["lam"]), "max_m": tune.uniform(*BOUNDS["max_m"]),
        "s": tune.loguniform(*BOUNDS["s"])}.items() if k not in space["base"]})
    total_epochs = space["base"].get("epochs", 200)

    def make_searcher(study_dir: Path):
        import optuna
        from ray.tune.search.optuna import OptunaSearch
        study_dir.mkdir(parents=True, exist_ok=True)
        storage = optuna.storages.RDBStorage(f"sqlite:///{study_dir / 'optuna.db'}")
        return OptunaSearch(metric="val_top1", mode="max", storage=storage,
                            study_name=study_dir.name,
                            sampler=optuna.samplers.TPESampler(seed=int(sampler_seed)))

    def make_scheduler():
        from ray.tune.schedulers import ASHAScheduler
        return ASHAScheduler(time_attr="epoch", metric="val_top1", mode="max",
                             max_t=total_epochs, grace_period=max(1, total_epochs // 10))

    corners = [{**space["base"], **{k: BOUNDS[k][i] for k in BOUNDS if k not in space["base"]}}
               for i in (0, 1)]
    return StudySpace("optuna_elm", DESCRIPTIONS["optuna_elm"], space, int(num_samples),
                      metric="val_top1", num_samples=int(num_samples),
                      make_searcher=make_searcher, make_scheduler=make_scheduler,
                      searcher_has_metric=True, sample_dicts=corners)
