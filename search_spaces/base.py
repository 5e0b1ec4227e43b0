"""StudySpace: a study file (plus command-line changes) resolved into what Ray Tune runs.

Param-space convention (the trainable relies on it, see ``trainables.methods.flatten_trial``):
``{"base": {fields every trial shares}, "method": grid_search([the fields of each trial that
differ])}`` for grids (so any subset of a grid, e.g. the trials an extension adds, is launched
the same way), and ``{"base": {...}, <field>: tune distribution}`` for searches.
"""
from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from search_spaces.studyfile import Context, StudyFileError, axis_values, field_value
from trainables.config import LOSS_HPARAMS, TrialConfig
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
    spec: dict = field(default_factory=dict)            # the resolved study file
    source: str = ""                                    # the file it came from

    @property
    def is_search(self) -> bool:
        return self.make_searcher is not None

    def trial_dicts(self, limit: int | None = None) -> list[dict]:
        """Flat TrialConfig dicts: every grid cell, or representative points of a search."""
        dicts = self.sample_dicts or [flatten_trial(v) for v in expand_grid(self.param_space)]
        return dicts[:limit] if limit is not None else dicts

    def configs(self) -> list[TrialConfig]:
        """Every trial's TrialConfig (errors name the study and the trial)."""
        out = []
        for i, d in enumerate(self.trial_dicts()):
            try:
                out.append(TrialConfig.from_dict(d))
            except ValueError as e:
                what = ", ".join(f"{k}={d[k]}" for k in ("loss", "drw", "lam", "seed") if k in d)
                raise StudyFileError(f"{self.source or self.name}: trial {i} ({what}): "
                                     f"{e}") from None
        return out

    def validate(self) -> None:
        """Build every trial's TrialConfig now, before any Ray or GPU time is spent."""
        self.configs()

    def trial_keys(self) -> list[str]:
        return [c.trial_key() for c in self.configs()]

    def subset(self, keep: list[bool]) -> StudySpace:
        """The same study launching only the trials where ``keep`` is true (an extension)."""
        dicts = [d for d, k in zip(self.trial_dicts(), keep) if k]
        return StudySpace(self.name, self.description, grid_param_space(dicts), len(dicts),
                          self.metric, self.mode, spec=self.spec, source=self.source)


def grid(values) -> dict:
    """``tune.grid_search`` without importing Ray (the same dict Ray builds)."""
    return {"grid_search": list(values)}


def expand_grid(space: dict) -> list[dict]:
    """Cartesian product of the top-level grid axes, as Ray expands them (counts, not order,
    are what callers rely on)."""
    axes = [(k, v["grid_search"]) for k, v in space.items()
            if isinstance(v, dict) and set(v) == {"grid_search"}]
    fixed = {k: v for k, v in space.items() if k not in dict(axes)}
    return [{**copy.deepcopy(fixed), **{k: copy.deepcopy(v) for (k, _), v in zip(axes, combo)}}
            for combo in itertools.product(*(vals for _, vals in axes))]


def grid_param_space(trials: list[dict]) -> dict:
    """Flat trial dicts -> ``{"base": shared fields, "method": grid([differing fields])}``."""
    if not trials:
        return {"base": {}, "method": grid([])}
    keys = {k for t in trials for k in t}
    shared = {k: trials[0][k] for k in sorted(keys)
              if all(k in t and t[k] == trials[0][k] for t in trials)}
    return {"base": shared,
            "method": grid([{k: v for k, v in t.items() if k not in shared} for t in trials])}


# =========================================================================================
# spec + command-line changes -> trials
# =========================================================================================
def apply_changes(spec: dict, *, epochs=None, seeds=None, overrides=None, axes=None,
                  source: str = "command line") -> dict:
    """``--epochs``, ``--seeds``, ``--set k=v`` (one value) and ``--grid k=v1,v2`` (an axis)
    applied to a normalised spec. A loss hyper-parameter goes only to the methods whose loss
    takes it (``--set lam=0.7`` changes ELM rows and leaves CE alone)."""
    spec = copy.deepcopy(spec)
    ctx = Context(source)
    changes = dict(overrides or {})
    if epochs is not None:
        changes["epochs"] = epochs
    new_axes = {k: axis_values(ctx.at("--grid", k), k, v) for k, v in (axes or {}).items()}
    if seeds is not None:
        new_axes["seed"] = axis_values(ctx.at("--seeds"), "seed", list(seeds))
    for k, v in changes.items():
        v = field_value(ctx.at("--set", k), k, v)
        spec["grid"].pop(k, None)
        spec.get("search", {}).get("space", {}).pop(k, None)
        if k in LOSS_HPARAMS and spec.get("methods"):
            _to_takers(ctx.at("--set", k), spec, k, v)
        else:
            spec["base"][k] = v
            for m in spec.get("methods") or []:   # beats the methods' own fields too
                if k in m:
                    m[k] = v
    for k, vals in new_axes.items():
        if k in LOSS_HPARAMS and spec.get("methods"):
            _to_takers(ctx.at("--grid", k), spec, k, None)    # refuses an axis nobody takes
        spec["base"].pop(k, None)
        spec["grid"][k] = vals
    for k in list(spec["grid"]):     # a one-value axis is a fixed value
        if len(spec["grid"][k]) == 1 and k not in LOSS_HPARAMS:
            spec["base"][k] = spec["grid"].pop(k)[0]
    if spec.get("methods"):
        spec["methods"] = _distinct(spec["methods"])
    from search_spaces.studyfile import check_consistent
    check_consistent(Context(source), spec)
    return spec


def _to_takers(ctx: Context, spec: dict, k: str, v) -> None:
    from trainables.losses import LOSSES
    takers = [m for m in spec["methods"] if k in LOSSES[m["loss"]].defaults]
    if not takers:
        ctx.fail(f"no method of this study uses a loss that takes {k} (losses here: "
                 f"{sorted({m['loss'] for m in spec['methods']})})")
    for m in takers:
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v


def _distinct(methods: list[dict]) -> list[dict]:
    out = []
    for m in methods:
        if m not in out:
            out.append(m)
    return out


def grid_trials(spec: dict) -> list[dict]:
    """Every trial of a grid spec, as flat TrialConfig dicts: methods × axes, where an axis
    over a loss hyper-parameter multiplies only the methods whose loss takes it."""
    from trainables.losses import LOSSES
    methods = spec.get("methods") or [{}]
    hp_axes = {k: v for k, v in spec["grid"].items() if k in LOSS_HPARAMS}
    other = [(k, v) for k, v in spec["grid"].items() if k not in LOSS_HPARAMS]
    expanded = []
    for m in methods:
        loss = m.get("loss", spec["base"].get("loss", "ce"))
        mine = [(k, v) for k, v in hp_axes.items() if k in LOSSES[loss].defaults]
        for combo in itertools.product(*(v for _, v in mine)):
            expanded.append({**m, **dict(zip((k for k, _ in mine), combo))})
    trials = []
    for cell in itertools.product(*(v for _, v in other)):
        fixed = dict(zip((k for k, _ in other), cell))
        trials += [{**spec["base"], **fixed, **m} for m in expanded]
    return trials


def build_space(spec: dict, source: str = "") -> StudySpace:
    """A resolved spec -> StudySpace (a grid, or a search with its searcher and scheduler)."""
    if "search" in spec:
        from search_spaces.search import search_space
        return search_space(spec, source)
    trials = grid_trials(spec)
    return StudySpace(spec["name"], spec["description"], grid_param_space(trials), len(trials),
                      spec=spec, source=source)
