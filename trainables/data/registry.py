"""Dataset registry: what each dataset is (classes, head size, channels, normalisation).

Readers are named as "module:function" and imported on first use, so validating a config never
imports a reader (or torchvision). A reader is called as ``reader(data_root, download)`` and
returns ``RawSplits`` (uint8 NCHW arrays and int64 labels, the test set balanced and whole).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from trainables.registry import Registry


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    img_max: int                 # head-class size before imbalance (docs/data.md)
    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    reader: str                  # "module:function" (memory datasets)
    kind: str = "memory"         # "memory": 32×32 arrays on the device; "files": split lists
    split_files: tuple[str, ...] = ()   # default list names (train, val, test) under data_root
    description: str = ""
    # "module:function" called as ``locate(data_root, download)``: checks the files are there
    # without reading them (FileNotFoundError saying where), so a CLI can refuse a bad
    # data_root before it builds anything heavy
    locator: str = ""

    def read(self, data_root: str, download: bool):
        return _resolve(self.reader)(data_root, download)

    def locate(self, data_root: str, download: bool) -> None:
        if self.locator:
            _resolve(self.locator)(data_root, download)


def check_data_location(cfg) -> None:
    """The dataset's files are where ``cfg`` says (nothing is read): FileNotFoundError naming
    the dataset and where it looked, before any process, Ray or GPU time is spent on it."""
    from pathlib import Path
    info = get_dataset(cfg.dataset)
    try:
        if info.kind == "files":
            root = Path(cfg.data_root).expanduser()
            if not root.is_dir():
                raise FileNotFoundError(f"data_root {root} is not a folder ({cfg.dataset} "
                                        "images are read from it)")
        else:
            info.locate(cfg.data_root, cfg.download)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"dataset {cfg.dataset}: {e}") from None
    if cfg.init_weights and not Path(cfg.init_weights).expanduser().is_file():
        raise FileNotFoundError(f"init_weights {cfg.init_weights} does not exist")


def _resolve(ref: str):
    module, fn = ref.split(":")
    return getattr(importlib.import_module(module), fn)


DATASETS: Registry = Registry("dataset")


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    return DATASETS.add(info)


def get_dataset(name: str) -> DatasetInfo:
    return DATASETS.get_spec(name)


def list_datasets(filter: str = "") -> list[str]:
    """Registered dataset names, sorted; ``filter`` is a wildcard such as ``"cifar*"``."""
    return DATASETS.names(filter)


def describe_dataset(name: str) -> str:
    return DATASETS.describe(name)


_CIFAR_MEAN, _CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
register_dataset(DatasetInfo("cifar10", 10, 5000, 3, 32, _CIFAR_MEAN, _CIFAR_STD,
                             "trainables.data.cifar:read_cifar10",
                             description="CIFAR-10 (python pickles under data_root)",
                             locator="trainables.data.cifar:locate_cifar10"))
register_dataset(DatasetInfo("cifar100", 100, 500, 3, 32, _CIFAR_MEAN, _CIFAR_STD,
                             "trainables.data.cifar:read_cifar100",
                             description="CIFAR-100, fine labels (python pickles under data_root)",
                             locator="trainables.data.cifar:locate_cifar100"))
# Grey, one channel: the ResNet32 stem takes 1 input channel (cheaper than replicating to 3).
# Images are zero-padded 28 -> 32; mean/std are those of the padded training set.
register_dataset(DatasetInfo("fashion_mnist", 10, 6000, 1, 32, (0.2190,), (0.3318,),
                             "trainables.data.fashion_mnist:read_fashion_mnist",
                             description="Fashion-MNIST, grey 28x28 padded to 32 (idx files)",
                             locator="trainables.data.fashion_mnist:locate_fashion_mnist"))
# Tiny, deterministic, learnable: for unit and integration tests only.
register_dataset(DatasetInfo("synthetic", 10, 100, 3, 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25),
                             "trainables.data.synthetic:read_synthetic",
                             description="tiny generated data for tests (no files)"))
# Large-scale, read from the user's image folders through split lists (docs/data.md).
# ImageNet's channel statistics, for both (the transforms of trainables.data.large_scale too).
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
register_dataset(DatasetInfo("imagenet_lt", 1000, 1280, 3, 224, IMAGENET_MEAN, IMAGENET_STD, "",
                             "files", ("ImageNet_LT_train.txt", "ImageNet_LT_val.txt",
                                       "ImageNet_LT_test.txt"),
                             description="ImageNet-LT: your ImageNet images + split lists"))
register_dataset(DatasetInfo("places_lt", 365, 4980, 3, 224, IMAGENET_MEAN, IMAGENET_STD, "",
                             "files", ("Places_LT_train.txt", "Places_LT_val.txt",
                                       "Places_LT_test.txt"),
                             description="Places-LT: your Places365 images + split lists"))
