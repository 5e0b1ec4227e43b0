"""A study file's normalised spec, plus the command line's changes, resolved into a StudySpace:
a grid's trials (methods × axes) or a search (:mod:`search_spaces.search`)."""
from __future__ import annotations

import copy
import itertools

from search_spaces.base import StudySpace, grid_param_space
from search_spaces.limits import grid_text, how_to_raise, max_trials
from search_spaces.search import search_space
from search_spaces.studyfile import Context, axis_values, check_consistent, field_value
from trainables.config import LOSS_HPARAMS


def apply_changes(spec: dict, *, epochs=None, seeds=None, overrides=None, axes=None,
                  source: str = "command line", max_trials: int | None = None) -> dict:
    """``--epochs``, ``--seeds``, ``--set k=v`` (one value) and ``--grid k=v1,v2`` (an axis)
    applied to a normalised spec. A loss hyper-parameter goes only to the methods whose loss
    takes it (``--set lam=0.7`` changes ELM rows and leaves CE alone)."""
    spec = copy.deepcopy(spec)
    ctx = Context(source, max_trials=max_trials)
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
    check_consistent(Context(source), spec)
    return spec


def _to_takers(ctx: Context, spec: dict, k: str, v) -> None:
    from trainables.losses import takes_hparam
    takers = [m for m in spec["methods"] if takes_hparam(m["loss"], k)]
    if not takers:
        ctx.fail(f"no method of this study uses a loss that takes {k} (losses here: "
                 f"{sorted({m['loss'] for m in spec['methods']})})")
    for m in takers:
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v


def _distinct(methods: list[dict]) -> list[dict]:
    out, seen = [], set()
    for m in methods:     # by value, in linear time (a long methods list stays fast)
        key = repr(sorted(m.items()))
        if key not in seen:
            seen.add(key)
            out.append(m)
    return out


def grid_count(spec: dict) -> tuple[int, list[tuple[str, int]]]:
    """(trials, [(axis, length), ...]) of a grid spec, counted from the lengths alone, as
    :func:`grid_trials` would build them (a loss hyper-parameter axis multiplies only the
    methods whose loss takes it)."""
    from trainables.losses import takes_hparam
    methods = spec.get("methods") or [{}]
    hp_axes = {k: len(v) for k, v in spec["grid"].items() if k in LOSS_HPARAMS}
    per_method = 0
    for m in methods:
        loss = m.get("loss", spec["base"].get("loss", "ce"))
        n = 1
        for k, length in hp_axes.items():
            if takes_hparam(loss, k):
                n *= length
        per_method += n
    total = per_method
    for k, v in spec["grid"].items():
        if k not in LOSS_HPARAMS:
            total *= len(v)
    parts = [("methods", len(methods))] + [(k, len(v)) for k, v in spec["grid"].items()]
    return total, parts


def check_grid_size(spec: dict, source: str, limit: int | None = None) -> int:
    """The grid's trial count, or a StudyFileError naming its axes and their lengths when it is
    past the limit (before a single trial is built)."""
    from search_spaces.studyfile import StudyFileError
    total, parts = grid_count(spec)
    limit = max_trials(limit)
    if total > limit:
        raise StudyFileError(f"{source or spec.get('name')}: {grid_text(total, parts)}: more "
                             f"than a study may hold; {how_to_raise(limit)}")
    return total


def grid_trials(spec: dict) -> list[dict]:
    """Every trial of a grid spec, as flat TrialConfig dicts: methods × axes, where an axis
    over a loss hyper-parameter multiplies only the methods whose loss takes it."""
    from trainables.losses import takes_hparam
    methods = spec.get("methods") or [{}]
    hp_axes = {k: v for k, v in spec["grid"].items() if k in LOSS_HPARAMS}
    other = [(k, v) for k, v in spec["grid"].items() if k not in LOSS_HPARAMS]
    expanded = []
    for m in methods:
        loss = m.get("loss", spec["base"].get("loss", "ce"))
        mine = [(k, v) for k, v in hp_axes.items() if takes_hparam(loss, k)]
        for combo in itertools.product(*(v for _, v in mine)):
            expanded.append({**m, **dict(zip((k for k, _ in mine), combo))})
    trials = []
    for cell in itertools.product(*(v for _, v in other)):
        fixed = dict(zip((k for k, _ in other), cell))
        trials += [{**spec["base"], **fixed, **m} for m in expanded]
    return trials


def build_space(spec: dict, source: str = "", max_trials: int | None = None) -> StudySpace:
    """A resolved spec -> StudySpace (a grid, or a search with its searcher and scheduler);
    a grid is counted, and refused past ``max_trials`` (the limit), before it is built."""
    if "search" in spec:
        return search_space(spec, source)
    check_grid_size(spec, source, max_trials)
    trials = grid_trials(spec)
    return StudySpace(spec["name"], spec["description"], grid_param_space(trials), len(trials),
                      spec=spec, source=source)
