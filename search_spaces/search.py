"""What a study file cannot hold: Optuna searchers and ASHA schedulers built from its
``search:`` and ``scheduler:`` sections (Ray and Optuna are imported only when a study runs)."""
from __future__ import annotations

import itertools
import math
from pathlib import Path

from search_spaces.base import StudySpace
from trainables.config import LARGE_SCALE_DATASETS, LARGE_SCALE_RECIPE, TrialConfig


def tune_distribution(kind: str, args: list):
    from ray import tune
    if kind == "uniform":
        return tune.uniform(*args)
    if kind == "loguniform":
        return tune.loguniform(*args)
    if kind == "int":
        return tune.randint(args[0], args[1] + 1)     # both ends included, as written
    return tune.choice(args)


def corner_points(space: dict) -> list[dict]:
    """Low corner, midpoint (geometric for log scales) and high corner of a search space: what
    is validated before Ray starts, since the sampled points are not known yet."""
    def pick(kind, args, where):
        if kind == "choice":
            return args[(0, len(args) // 2, -1)[where]]
        lo, hi = args
        if where == 1:
            mid = math.sqrt(lo * hi) if kind == "loguniform" else (lo + hi) / 2
            return int(mid) if kind == "int" else mid
        return (lo, hi)[where // 2]
    return [{k: pick(kind, args, w) for k, (kind, args) in space.items()} for w in (0, 1, 2)]


# The fields that decide how many training images each class keeps (training_counts).
DATA_SIZE_FIELDS = ("dataset", "imb_type", "img_max", "ratio", "val_fraction")


def data_size_extremes(space: dict) -> list[dict]:
    """Every combination of the extremes of the searched data-size fields (each choice; both
    ends of a range), the other fields at their midpoint. A class's count is monotone in
    img_max (up) and ratio (down) and the hold-out never empties a class, so if these points
    can be built, every point the sampler can draw can: a space that can draw data which
    cannot exist is refused at validation, not trial by trial."""
    mid = corner_points(space)[1]
    ends = []
    for k in DATA_SIZE_FIELDS:
        if k in space:
            kind, args = space[k]
            ends.append([(k, v) for v in (args if kind == "choice" else dict.fromkeys(args))])
    return [{**mid, **dict(combo)} for combo in itertools.product(*ends)] if ends else []


def total_epochs(base: dict) -> int:
    """The run's real length: the base's, the large-scale recipe's 90 (docs/recipe.md), or the
    TrialConfig default (read, not built: a bad base is validate()'s to report)."""
    return base.get("epochs") or (LARGE_SCALE_RECIPE["epochs"]
                                  if base.get("dataset") in LARGE_SCALE_DATASETS
                                  else TrialConfig.__dataclass_fields__["epochs"].default)


def search_space(spec: dict, source: str) -> StudySpace:
    search, sched = spec["search"], spec.get("scheduler")
    base = {**spec["base"], **((spec.get("methods") or [{}])[0])}
    space = {k: v for k, v in search["space"].items() if k not in base}
    param_space = {"base": base, **{k: tune_distribution(*v) for k, v in space.items()}}
    epochs = total_epochs(base)

    def make_searcher(study_dir: Path):
        import optuna

        from search_spaces.optuna_resumable import ResumableOptunaSearch
        study_dir.mkdir(parents=True, exist_ok=True)
        storage = optuna.storages.RDBStorage(f"sqlite:///{study_dir / 'optuna.db'}")
        sampler = (optuna.samplers.TPESampler(seed=search["seed"]) if search["sampler"] == "tpe"
                   else optuna.samplers.RandomSampler(seed=search["seed"]))
        return ResumableOptunaSearch(metric=search["metric"], mode=search["mode"],
                                     storage=storage, study_name=study_dir.name, sampler=sampler)

    def make_scheduler():
        from ray.tune.schedulers import ASHAScheduler
        return ASHAScheduler(time_attr="epoch", metric=sched.get("metric", search["metric"]),
                             mode=sched.get("mode", search["mode"]),
                             max_t=sched.get("max_t", epochs),
                             grace_period=sched.get("grace_period", max(1, epochs // 10)),
                             reduction_factor=sched.get("reduction_factor", 4))

    points = corner_points(space)
    points += [p for p in data_size_extremes(space) if p not in points]
    samples = [{**base, **p} for p in points]
    return StudySpace(spec["name"], spec["description"], param_space, search["num_samples"],
                      metric=search["metric"], mode=search["mode"],
                      num_samples=search["num_samples"], make_searcher=make_searcher,
                      make_scheduler=make_scheduler if sched else None,
                      searcher_has_metric=True, sample_dicts=samples, spec=spec, source=source)
