"""StudySpace: what Ray Tune runs for a study, and the grid helpers that build its param space
(a study file becomes one in :mod:`search_spaces.resolve`).

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

from search_spaces.studyfile import StudyFileError
from trainables.config import TrialConfig
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
        """Every trial's TrialConfig. Any trial that cannot be built (a bad field, or data that
        cannot exist: trainables.data.registry.training_counts) refuses the whole study in one
        line: the first such trial, its error, and how many trials are refused."""
        out, refused = self.built()
        if refused:
            raise StudyFileError(self.refusal(refused, len(out) + len(refused)))
        return out

    def built(self) -> tuple[list[TrialConfig], list[tuple[int, dict, ValueError]]]:
        """(the configs that build, (index, fields, error) of each trial that does not)."""
        out, refused = [], []
        for i, d in enumerate(self.trial_dicts()):
            try:
                out.append(TrialConfig.from_dict(d))
            except ValueError as e:
                refused.append((i, d, e))
        return out, refused

    def refusal(self, refused: list, total: int) -> str:
        """One line for the trials that cannot be built: the first, and how many."""
        i, d, e = refused[0]
        what = ", ".join(f"{k}={d[k]}" for k in ("loss", "drw", "lam", "seed") if k in d)
        where = (f"search point {i} of the {total} checked before Ray starts (corners, "
                 "midpoint, data-size extremes)" if self.is_search else f"trial {i}")
        count = (f" ({len(refused)} of {total} trials are refused)"
                 if len(refused) > 1 and not self.is_search else "")
        return f"{self.source or self.name}: {where} ({what}): {e}{count}"

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
