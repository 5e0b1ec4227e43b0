"""StudySpace and the space registry.

Param-space convention (the trainable relies on it, see ``trainables.methods.flatten_trial``):
``{"base": {fixed TrialConfig fields}, "method": grid_search([method dicts]), <axis>:
grid_search([...]) for other TrialConfig fields}``.
"""
from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from trainables.config import LOSS_HPARAMS, TrialConfig
from trainables.losses import LOSSES
from trainables.methods import flatten_trial


@dataclass
class StudySpace:
    name: str
    description: str
    param_space: dict
    expected_trials: int
    metric: str = "test_top1"
    mode: str = "max"
    num_samples: int = 1
    make_searcher: Callable[[Path], object] | None = None
    make_scheduler: Callable[[], object] | None = None
    searcher_has_metric: bool = False       # the searcher was built with metric/mode itself
    sample_dicts: list = field(default_factory=list)   # representative trials (searcher spaces)

    def trial_dicts(self, limit: int | None = None) -> list[dict]:
        """Flat TrialConfig dicts: every grid cell, or representative points of a search."""
        dicts = self.sample_dicts or [flatten_trial(v) for v in expand_grid(self.param_space)]
        return dicts[:limit] if limit is not None else dicts

    def validate(self) -> None:
        """Build every trial's TrialConfig now, before any Ray or GPU time is spent."""
        for i, d in enumerate(self.trial_dicts()):
            try:
                TrialConfig.from_dict(d)
            except ValueError as e:
                raise ValueError(f"space '{self.name}', trial {i} "
                                 f"({d.get('loss')}, seed {d.get('seed')}): {e}") from None


def grid(values) -> dict:
    """``tune.grid_search`` without importing Ray (the same dict Ray builds)."""
    return {"grid_search": list(values)}


def expand_grid(space: dict) -> list[dict]:
    """Cartesian product of the top-level grid axes (Ray's order: the last axis varies fastest
    is not guaranteed, so counts, not order, are what callers rely on)."""
    axes = [(k, v["grid_search"]) for k, v in space.items()
            if isinstance(v, dict) and set(v) == {"grid_search"}]
    fixed = {k: v for k, v in space.items() if k not in dict(axes)}
    out = []
    for combo in itertools.product(*(vals for _, vals in axes)):
        out.append({**copy.deepcopy(fixed), **{k: copy.deepcopy(v) for (k, _), v in
                                                  zip(axes, combo)}})
    return out


def apply_common(space: dict, *, epochs=None, seeds=None, overrides=None) -> dict:
    """--epochs, --seeds and --set: into ``base``; an override of an axis replaces the axis."""
    space = copy.deepcopy(space)
    base = space.setdefault("base", {})
    if epochs is not None:
        base["epochs"] = epochs
    if seeds is not None:
        seeds = list(seeds)
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {seeds}")
        space.pop("seed", None)
        base.pop("seed", None)
        if len(seeds) == 1:
            base["seed"] = seeds[0]
        else:
            space["seed"] = grid(seeds)
    methods = space["method"]["grid_search"] if isinstance(space.get("method"), dict) else []
    for k, v in (overrides or {}).items():
        space.pop(k, None)
        if k in LOSS_HPARAMS and methods:
            # a loss hyper-parameter goes only to the methods whose loss takes it (so
            # `--set lam=0.7` changes ELM rows and leaves CE alone)
            takers = [m for m in methods if k in LOSSES[m["loss"]].defaults]
            if not takers:
                raise ValueError(f"--set {k}: no method of this space uses a loss that takes "
                                 f"{k} (losses here: {sorted({m['loss'] for m in methods})})")
            for m in takers:
                m[k] = v
            continue
        base[k] = v
        for m in methods:          # an override also beats the methods' own fields
            if k in m:
                m[k] = v
    return space


def count_trials(space: dict) -> int:
    n = 1
    for v in space.values():
        if isinstance(v, dict) and set(v) == {"grid_search"}:
            n *= len(v["grid_search"])
    return n


SPACES: dict[str, Callable[..., StudySpace]] = {}
DESCRIPTIONS: dict[str, str] = {}


def register_space(name: str, description: str):
    def deco(fn):
        SPACES[name] = fn
        DESCRIPTIONS[name] = description
        return fn
    return deco


def get_space(name: str, *, epochs=None, seeds=None, overrides=None, **options) -> StudySpace:
    """Build space ``name``; unknown names or options raise ValueError listing valid ones."""
    if name not in SPACES:
        raise ValueError(f"unknown space '{name}'; choose one of {sorted(SPACES)}")
    fn = SPACES[name]
    valid = sorted(getattr(fn, "options", ()))
    bad = sorted(set(options) - set(valid))
    if bad:
        raise ValueError(f"space '{name}' has no option(s) {bad}; its options: "
                         f"{valid or 'none'}")
    return fn(epochs=epochs, seeds=seeds, overrides=overrides or {}, **options)


def list_spaces() -> list[tuple[str, str, int]]:
    return [(n, DESCRIPTIONS[n], get_space(n).expected_trials) for n in SPACES]


def options(*names):
    """Declare a builder's options (so get_space can reject unknown ones)."""
    def deco(fn):
        fn.options = names
        return fn
    return deco


def make_space(name: str, space: dict, **kw) -> StudySpace:
    """A grid StudySpace with its registered description and its real trial count."""
    return StudySpace(name, DESCRIPTIONS[name], space, count_trials(space), **kw)
