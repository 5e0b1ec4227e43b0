"""The paper's tables: Table I (CIFAR-LT/Step), Tables II/III (ImageNet-LT, Places-LT)."""
from __future__ import annotations

from search_spaces.base import StudySpace, apply_common, grid, make_space, register_space
from trainables.methods import TABLE1_METHODS, TABLE23_METHODS


@register_space("table1", "Table I: CIFAR-10/100 × LT/Step × r∈{10,100} × 20 methods × 3 seeds")
def table1(*, epochs, seeds, overrides) -> StudySpace:
    space = {"base": {}, "dataset": grid(["cifar10", "cifar100"]), "imb_type": grid(["lt", "step"]),
             "ratio": grid([10.0, 100.0]), "method": grid(TABLE1_METHODS), "seed": grid([0, 1, 2])}
    space = apply_common(space, epochs=epochs, seeds=seeds, overrides=overrides)
    return make_space("table1", space)


# SPEC 6: ResNet-50, batch 256, 90 epochs, ×0.1 at 50/70/85, 5 warm-up epochs, DRW from 50.
LARGE_SCALE_RECIPE = {"model": "resnet50", "epochs": 90, "recipe_epochs": 90, "batch_size": 256,
                      "lr_milestones": [50, 70, 85], "lr_factors": [0.1, 0.01, 0.001],
                      "warmup_epochs": 5, "eval_batch_size": 500}


def _large(name: str, dataset: str, *, epochs, seeds, overrides) -> StudySpace:
    space = {"base": {"dataset": dataset, **LARGE_SCALE_RECIPE, "seed": 0},
             "method": grid(TABLE23_METHODS)}
    return make_space(name, apply_common(space, epochs=epochs, seeds=seeds, overrides=overrides))


@register_space("table2", "Table II: ImageNet-LT, ResNet-50, 15 methods, 1 seed (requires "
                "the imagenet_lt dataset)")
def table2(*, epochs, seeds, overrides) -> StudySpace:
    return _large("table2", "imagenet_lt", epochs=epochs, seeds=seeds, overrides=overrides)


@register_space("table3", "Table III: Places-LT, ResNet-50, 15 methods, 1 seed (requires "
                "the places_lt dataset)")
def table3(*, epochs, seeds, overrides) -> StudySpace:
    return _large("table3", "places_lt", epochs=epochs, seeds=seeds, overrides=overrides)
