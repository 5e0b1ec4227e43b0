"""Small spaces: the embedded default (quickstart) and the one tests and CI run (smoke)."""
from __future__ import annotations

from search_spaces.base import StudySpace, apply_common, grid, make_space, register_space
from trainables.methods import method

# Sized for ~10 minutes on 2 CPU cores (2 trials at a time, 1 core each); see README.
QUICKSTART = {"dataset": "fashion_mnist", "imb_type": "lt", "ratio": 100.0, "img_max": 1000,
              "epochs": 10, "eval_every": 5, "checkpoint_every": 5, "batch_size": 128}


@register_space("quickstart", "Fashion-MNIST-LT r=100 × {CE, LDAM + DRW, ELM + DRW λ=0.5} × "
                "2 seeds, short proportional schedule (the embedded default)")
def quickstart(*, epochs, seeds, overrides) -> StudySpace:
    space = {"base": dict(QUICKSTART),
             "method": grid([method("ce"), method("ldam", True), method("elm", True, lam=0.5)]),
             "seed": grid([0, 1])}
    return make_space("quickstart", apply_common(space, epochs=epochs, seeds=seeds,
                                                 overrides=overrides))


@register_space("smoke", "synthetic data, CE and ELM + DRW × 2 seeds, 2 epochs (tests, CI)")
def smoke(*, epochs, seeds, overrides) -> StudySpace:
    space = {"base": {"dataset": "synthetic", "ratio": 10.0, "epochs": 2, "eval_every": 1,
                      "checkpoint_every": 1, "batch_size": 32, "eval_batch_size": 200,
                      "device": "cpu"},
             "method": grid([method("ce"), method("elm", True, lam=0.5)]), "seed": grid([0, 1])}
    return make_space("smoke", apply_common(space, epochs=epochs, seeds=seeds,
                                            overrides=overrides))
