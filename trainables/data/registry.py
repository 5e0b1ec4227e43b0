"""Dataset registry: what each dataset is (classes, head size, channels, normalisation).

Readers are named as "module:function" and imported on first use, so validating a config never
imports a reader (or torchvision). A reader is called as ``reader(data_root, download)`` and
returns ``RawSplits`` (uint8 NCHW arrays and int64 labels, the test set balanced and whole).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    img_max: int                 # head-class size before imbalance (SPEC 4)
    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    reader: str                  # "module:function" (memory datasets)
    kind: str = "memory"         # "memory": 32×32 arrays on the device; "files": split lists
    split_files: tuple[str, ...] = ()   # default list names (train, val, test) under data_root

    def read(self, data_root: str, download: bool):
        module, fn = self.reader.split(":")
        return getattr(importlib.import_module(module), fn)(data_root, download)


DATASETS: dict[str, DatasetInfo] = {}


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    if info.name in DATASETS:
        raise ValueError(f"dataset '{info.name}' is registered twice")
    DATASETS[info.name] = info
    return info


def get_dataset(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset '{name}'; choose one of {sorted(DATASETS)}")
    return DATASETS[name]


_CIFAR_MEAN, _CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
register_dataset(DatasetInfo("cifar10", 10, 5000, 3, 32, _CIFAR_MEAN, _CIFAR_STD,
                             "trainables.data.cifar:read_cifar10"))
register_dataset(DatasetInfo("cifar100", 100, 500, 3, 32, _CIFAR_MEAN, _CIFAR_STD,
                             "trainables.data.cifar:read_cifar100"))
# Grey, one channel: the ResNet32 stem takes 1 input channel (cheaper than replicating to 3).
# Images are zero-padded 28 -> 32; mean/std are those of the padded training set.
register_dataset(DatasetInfo("fashion_mnist", 10, 6000, 1, 32, (0.2190,), (0.3318,),
                             "trainables.data.fashion_mnist:read_fashion_mnist"))
# Tiny, deterministic, learnable: for unit and integration tests only.
register_dataset(DatasetInfo("synthetic", 10, 100, 3, 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25),
                             "trainables.data.synthetic:read_synthetic"))
# Large-scale, read from the user's image folders through split lists (SPEC 6).
_IMNET_MEAN, _IMNET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
register_dataset(DatasetInfo("imagenet_lt", 1000, 1280, 3, 224, _IMNET_MEAN, _IMNET_STD, "",
                             "files", ("ImageNet_LT_train.txt", "ImageNet_LT_val.txt",
                                       "ImageNet_LT_test.txt")))
register_dataset(DatasetInfo("places_lt", 365, 4980, 3, 224, _IMNET_MEAN, _IMNET_STD, "",
                             "files", ("Places_LT_train.txt", "Places_LT_val.txt",
                                       "Places_LT_test.txt")))
