"""Ablations beyond the tables: the λ sweep and the margin × scale grid."""
from __future__ import annotations

from search_spaces.base import StudySpace, apply_common, grid, make_space, options, register_space
from trainables.methods import method

LAMBDAS = [round(i * 0.1, 1) for i in range(16)]      # 0.0 ... 1.5, exact decimals
MAX_MS = [0.1, 0.3, 0.5, 0.7, 1.0]
SCALES = [10.0, 20.0, 30.0, 40.0, 64.0]


def _where(dataset: str, imb_type: str, ratio: float) -> dict:
    return {"dataset": dataset, "imb_type": imb_type, "ratio": float(ratio)}


@register_space("lambda_sweep", "λ from 0 to 1.5 (step 0.1) for ELM, ELM + DRW, ELM w/o Δy; "
                "LDAM and LDAM + DRW as references; 3 seeds")
@options("dataset", "imb_type", "ratio")
def lambda_sweep(*, epochs, seeds, overrides, dataset="cifar10", imb_type="lt",
                 ratio=100.0) -> StudySpace:
    methods = ([method("elm", lam=v) for v in LAMBDAS]
               + [method("elm", True, lam=v) for v in LAMBDAS]
               + [method("elm_wo_dy", lam=v) for v in LAMBDAS]
               + [method("ldam"), method("ldam", True)])
    space = {"base": _where(dataset, imb_type, ratio), "method": grid(methods),
             "seed": grid([0, 1, 2])}
    return make_space("lambda_sweep", apply_common(space, epochs=epochs, seeds=seeds,
                                                   overrides=overrides))


@register_space("margin_scale", "ELM + DRW over max_m ∈ {0.1..1.0} × s ∈ {10..64}; 3 seeds")
@options("dataset", "imb_type", "ratio", "lam")
def margin_scale(*, epochs, seeds, overrides, dataset="cifar10", imb_type="lt", ratio=100.0,
                 lam=0.5) -> StudySpace:
    space = {"base": {**_where(dataset, imb_type, ratio), "loss": "elm", "drw": True,
                      "lam": float(lam)},
             "max_m": grid(MAX_MS), "s": grid(SCALES), "seed": grid([0, 1, 2])}
    return make_space("margin_scale", apply_common(space, epochs=epochs, seeds=seeds,
                                                   overrides=overrides))
