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
    # default split files (train, val, test) under data_root; "" = no default (the split is
    # optional, or must be given)
    split_files: tuple[str, ...] = ()
    description: str = ""
    # "module:function" called as ``locate(data_root, download)``: checks the files are there
    # without reading them (FileNotFoundError saying where), so a CLI can refuse a bad
    # data_root before it builds anything heavy
    locator: str = ""
    # training images per class in the source, balanced (memory datasets): what a trial's
    # counts are checked against before anything is read (training_counts); 0 = not known
    # without reading (split-list datasets: their lists are checked when read)
    train_per_class: int = 0
    title: str = ""              # the name a table prints (setting_label, below)

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


class DataSizeError(ValueError):
    """A trial whose training data cannot exist: more images asked of a class than it has, or
    a class left with none (no margin, class weight or logit adjustment is defined then)."""


def requested_counts(cfg, info: DatasetInfo) -> list[int]:
    """Images per class the imbalance profile asks of the balanced source, before the hold-out
    (class 0, the head, asks img_max: the config's, else the dataset's)."""
    from trainables.data.imbalance import class_counts
    img_max = cfg.img_max if cfg.img_max is not None else info.img_max
    return class_counts(info.num_classes, img_max, cfg.imb_type, cfg.ratio)


def training_counts(cfg) -> list[int] | None:
    """Per-class training images of a trial, after the long-tail subsampling and the
    validation hold-out, from the dataset's known sizes: nothing is read. The one rule every
    entry point checks a config with (TrialConfig's validation calls it). None for split-list
    datasets, whose counts are the train list's (checked with the same words when it is read).
    Raises DataSizeError naming the dataset, img_max, ratio, imb_type and the first class at
    fault."""
    from trainables.data.imbalance import holdout_size
    info = get_dataset(cfg.dataset)
    if not info.train_per_class:
        return None
    counts = requested_counts(cfg, info)
    where = (f"dataset {cfg.dataset}, img_max {counts[0]}, ratio {cfg.ratio:g}, imb_type "
             f"{cfg.imb_type}")
    if counts[0] > info.train_per_class:     # class 0 is the head: it asks for the most
        raise DataSizeError(f"{where}: class 0 has {info.train_per_class} training images, "
                            f"{counts[0]} requested (img_max at most {info.train_per_class} "
                            f"on {cfg.dataset})")
    for c, n in enumerate(counts):
        if n < 1:
            raise DataSizeError(f"{where}: class {c} would keep {n} training images; "
                                "every class needs at least one (lower ratio or raise "
                                "img_max)")
    return [n - holdout_size(n, cfg.val_fraction) for n in counts]


def _resolve(ref: str):
    module, fn = ref.split(":")
    return getattr(importlib.import_module(module), fn)


DATASETS: Registry = Registry("dataset")


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    return DATASETS.add(info)


def get_dataset(name: str) -> DatasetInfo:
    return DATASETS.get_spec(name)


def setting_label(dataset, imb_type, ratio) -> str:
    """The one label of a setting, in every table, figure, verdict and status line: the
    dataset's title, and for a dataset the config subsamples (CIFAR, Fashion-MNIST) the
    imbalance profile and ratio ρ; a split-list dataset's imbalance is its lists'."""
    info = DATASETS.get(dataset)
    if info is None:
        return f"{dataset} {imb_type} ρ={float(ratio):g}"
    if info.kind == "files":
        return info.title
    imb = {"lt": "LT", "step": "Step"}.get(imb_type, str(imb_type))
    return f"{info.title} {imb} ρ={float(ratio):g}"


def list_datasets(filter: str = "") -> list[str]:
    """Registered dataset names, sorted; ``filter`` is a wildcard such as ``"cifar*"``."""
    return DATASETS.names(filter)


def describe_dataset(name: str) -> str:
    return DATASETS.describe(name)


_CIFAR_MEAN, _CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
register_dataset(DatasetInfo("cifar10", 10, 5000, 3, 32, _CIFAR_MEAN, _CIFAR_STD,
                             "trainables.data.cifar:read_cifar10",
                             description="CIFAR-10 (python pickles under data_root)",
                             locator="trainables.data.cifar:locate_cifar10",
                             train_per_class=5000,
                             title="CIFAR-10"))
register_dataset(DatasetInfo("cifar100", 100, 500, 3, 32, _CIFAR_MEAN, _CIFAR_STD,
                             "trainables.data.cifar:read_cifar100",
                             description="CIFAR-100, fine labels (python pickles under data_root)",
                             locator="trainables.data.cifar:locate_cifar100",
                             train_per_class=500,
                             title="CIFAR-100"))
# Grey, one channel: the ResNet32 stem takes 1 input channel (cheaper than replicating to 3).
# Images are zero-padded 28 -> 32; mean/std are those of the padded training set.
register_dataset(DatasetInfo("fashion_mnist", 10, 6000, 1, 32, (0.2190,), (0.3318,),
                             "trainables.data.fashion_mnist:read_fashion_mnist",
                             description="Fashion-MNIST, grey 28x28 padded to 32 (idx files)",
                             locator="trainables.data.fashion_mnist:locate_fashion_mnist",
                             train_per_class=6000,
                             title="Fashion-MNIST"))
# Tiny, deterministic, learnable: for unit and integration tests only.
register_dataset(DatasetInfo("synthetic", 10, 100, 3, 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25),
                             "trainables.data.synthetic:read_synthetic",
                             description="tiny generated data for tests (no files)",
                             train_per_class=100,
                             title="synthetic"))
# Large-scale, read from the user's image folders through split lists (docs/data.md).
# ImageNet's channel statistics, for all three (the transforms of trainables.data.large_scale too).
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
register_dataset(DatasetInfo("imagenet_lt", 1000, 1280, 3, 224, IMAGENET_MEAN, IMAGENET_STD, "",
                             "files", ("ImageNet_LT_train.txt", "ImageNet_LT_val.txt",
                                       "ImageNet_LT_test.txt"),
                             description="ImageNet-LT: your ImageNet images + split lists",
                             title="ImageNet-LT"))
register_dataset(DatasetInfo("places_lt", 365, 4980, 3, 224, IMAGENET_MEAN, IMAGENET_STD, "",
                             "files", ("Places_LT_train.txt", "Places_LT_val.txt",
                                       "Places_LT_test.txt"),
                             description="Places-LT: your Places365 images + split lists",
                             title="Places-LT"))
# iNaturalist 2018: the official JSON by default (what the dataset's download holds); the
# Decoupling lists are the same records (--train-list / --test-list). No default validation
# split: the public val2018 is the field's test set, and selecting on it would be selecting on
# the test set (a validation list held out of TRAIN goes to --val-list). img_max: the largest
# class of train2018 as the field reports it (1,000; imbalance ratio 500); a trial's counts
# are its train list's.
register_dataset(DatasetInfo("inat2018", 8142, 1000, 3, 224, IMAGENET_MEAN, IMAGENET_STD, "",
                             "files", ("train2018.json", "", "val2018.json"),
                             description="iNaturalist 2018: your images + train2018.json or a "
                                         "path-label list; tested on val2018, as the field "
                                         "does\n\n437,513 training images, 8,142 classes; "
                                         "val2018 (24,426 images) is the test set. "
                                         "Decoupling's iNaturalist18_train.txt / _val.txt "
                                         "are the same records (docs/data.md)",
                             title="iNaturalist 2018"))
