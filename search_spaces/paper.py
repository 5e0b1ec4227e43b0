"""The paper's tables: Table I (CIFAR-LT/Step), Tables II/III (ImageNet-LT, Places-LT)."""
from __future__ import annotations

from search_spaces.base import StudySpace, apply_common, grid, make_space, register_space
from trainables.config import LARGE_SCALE_RECIPE
from trainables.methods import TABLE1_METHODS, TABLE23_METHODS


@register_space("table1", "Table I: CIFAR-10/100 × LT/Step × r∈{10,100} × 20 methods × "
                "3 seeds")
def table1(*, epochs, seeds, overrides) -> StudySpace:
    space = {"base": {}, "dataset": grid(["cifar10", "cifar100"]), "imb_type": grid(["lt", "step"]),
             "ratio": grid([10.0, 100.0]), "method": grid(TABLE1_METHODS), "seed": grid([0, 1, 2])}
    space = apply_common(space, epochs=epochs, seeds=seeds, overrides=overrides)
    return make_space("table1", space)


def _large(name: str, dataset: str, *, epochs, seeds, overrides) -> StudySpace:
    recipe = {k: list(v) if isinstance(v, tuple) else v for k, v in LARGE_SCALE_RECIPE.items()}
    space = {"base": {"dataset": dataset, **recipe, "seed": 0},
             "method": grid(TABLE23_METHODS)}
    return make_space(name, apply_common(space, epochs=epochs, seeds=seeds, overrides=overrides),
                      metric="test_top1")


@register_space("table2", "Table II: ImageNet-LT, ResNet-50, 15 methods, 1 seed (requires "
                "your ImageNet-LT images: --set data_root=... train_list=...)")
def table2(*, epochs, seeds, overrides) -> StudySpace:
    return _large("table2", "imagenet_lt", epochs=epochs, seeds=seeds, overrides=overrides)


@register_space("table3", "Table III: Places-LT, ResNet-50, 15 methods, 1 seed (requires "
                "your Places-LT images: --set data_root=...)")
def table3(*, epochs, seeds, overrides) -> StudySpace:
    return _large("table3", "places_lt", epochs=epochs, seeds=seeds, overrides=overrides)
