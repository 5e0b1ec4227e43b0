"""From a TrialConfig to device-resident splits and loaders (raw reads cached per process)."""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from trainables.data.fingerprint import data_fingerprint, file_source
from trainables.data.imbalance import split_validation, subsample_indices
from trainables.data.loader import DeviceLoader
from trainables.data.registry import (DataSizeError, DatasetInfo, get_dataset,
                                      requested_counts)


@dataclass
class TrialData:
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor | None
    val_y: torch.Tensor | None
    test_x: torch.Tensor
    test_y: torch.Tensor
    class_counts: list[int]          # of the training split actually used
    num_classes: int
    channels: int
    mean: tuple
    std: tuple
    info: DatasetInfo
    fingerprint: str = ""            # trainables.data.fingerprint: the training examples used
    source_fingerprint: str = ""     # ... and the source files alone


@dataclass(frozen=True)
class _RawKey:
    """What a raw read is cached by: the dataset and its folder (absolute). The reader's
    arguments ride along outside the key (a later ``download=True`` finds the same read)."""
    name: str
    root: str
    info: DatasetInfo = field(compare=False)
    data_root: str = field(compare=False)
    download: bool = field(compare=False)


@functools.lru_cache(maxsize=None)   # Ray reuses worker processes: 480 trials, one read
def _read_once(key: _RawKey):
    return key.info.read(key.data_root, key.download)


def read_raw(info: DatasetInfo, data_root: str, download: bool):
    """The dataset's RawSplits, read once per process; read again if a source file changed
    since (another size or mtime), so the data and its fingerprint stay the files'."""
    key = _RawKey(info.name, os.path.abspath(os.path.expanduser(data_root)), info, data_root,
                  download)
    raw = _read_once(key)
    if any(s.changed() for s in raw.sources):
        _read_once.cache_clear()     # an lru_cache drops no single entry: the stale read goes
        raw = _read_once(key)        # (with the others, read again when next asked)
    return raw


@dataclass
class FileData:
    """A large-scale dataset: split lists over image files, loaded by DataLoader workers."""
    train: object
    val: object | None
    test: object
    class_counts: list[int]
    num_classes: int
    channels: int
    mean: tuple
    std: tuple
    info: DatasetInfo
    image_size: int
    fingerprint: str = ""            # of the train list's entries and the lists read
    source_fingerprint: str = ""


def build_data(cfg, device):
    """The imbalanced train split (docs/data.md), optional validation hold-out, the full test set;
    for split-list datasets, the validated lists (class counts from the train list)."""
    info = get_dataset(cfg.dataset)
    if info.kind == "files":
        return build_file_data(cfg, info)
    raw = read_raw(info, cfg.data_root, cfg.download)
    counts = requested_counts(cfg, info)
    idx = subsample_indices(raw.train_y, counts, cfg.data_seed)
    train_idx, val_idx = split_validation(idx, raw.train_y, cfg.val_fraction, cfg.data_seed)
    prints = data_fingerprint(raw.sources, train_idx, raw.train_y[train_idx])
    to = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)   # noqa: E731
    used = np.bincount(raw.train_y[train_idx], minlength=info.num_classes)
    return TrialData(
        train_x=to(raw.train_x[train_idx]), train_y=to(raw.train_y[train_idx]),
        val_x=to(raw.train_x[val_idx]) if len(val_idx) else None,
        val_y=to(raw.train_y[val_idx]) if len(val_idx) else None,
        test_x=to(raw.test_x), test_y=to(raw.test_y), class_counts=[int(n) for n in used],
        num_classes=info.num_classes, channels=info.channels, mean=info.mean, std=info.std,
        info=info, fingerprint=prints[0], source_fingerprint=prints[1])


def eval_batch_size(cfg, device) -> int:
    """The configured one, else 1000 on a GPU and 100 on CPU (measured: large batches thrash
    the CPU's caches, ~2x slower per image; bench/train_throughput.py)."""
    if cfg.eval_batch_size:
        return cfg.eval_batch_size
    return 1000 if torch.device(device or "cpu").type == "cuda" else 100


def make_loaders(data, cfg, device=None, shard: tuple[int, int] | None = None):
    """(train loader, {'test': ..., 'val': ...}) over the device-resident tensors, or over
    DataLoader workers for split-list datasets. ``shard=(rank, world)``: each loader yields
    this data-parallel worker's slice of every global batch (trainables.data.loader)."""
    ebs = eval_batch_size(cfg, device)
    if isinstance(data, FileData):
        from trainables.data.large_scale import FileLoader
        kw = dict(seed=cfg.seed, num_workers=cfg.num_workers, device=device or "cpu",
                  channels_last=cfg.channels_last, image_size=data.image_size, shard=shard)
        evals = {"test": FileLoader(data.test, ebs, shuffle=False, **kw)}
        if data.val is not None:
            evals["val"] = FileLoader(data.val, ebs, shuffle=False, **kw)
        return FileLoader(data.train, cfg.batch_size, shuffle=True, train=True, **kw), evals
    train = DeviceLoader(data.train_x, data.train_y, cfg.batch_size, data.mean, data.std,
                         augment=cfg.augment, shuffle=True, seed=cfg.seed,
                         channels_last=cfg.channels_last, shard=shard)
    evals = {"test": eval_loader(data, data.test_x, data.test_y, cfg, device, shard)}
    if data.val_x is not None:
        evals["val"] = eval_loader(data, data.val_x, data.val_y, cfg, device, shard)
    return train, evals


def eval_loader(data, x, y, cfg, device=None, shard: tuple[int, int] | None = None):
    """An evaluation loader over device-resident images ``x`` (a split of ``data``, or part
    of one): no augmentation, in order, the trial's eval batch size and memory format."""
    return DeviceLoader(x, y, eval_batch_size(cfg, device), data.mean, data.std, augment=False,
                        shuffle=False, channels_last=cfg.channels_last, shard=shard)


def _list_path(cfg, info, which: int, given) -> str | None:
    """The split file given, else the dataset's default under data_root (None: it has none)."""
    if given:
        return given
    default = info.split_files[which]
    return os.path.join(os.path.expanduser(cfg.data_root), default) if default else None


def build_file_data(cfg, info: DatasetInfo) -> FileData:
    from trainables.data.large_scale import (ListDataset, build_transforms, read_split,
                                             validate_split)
    size = cfg.image_size or info.image_size
    raw = cfg.gpu_decode
    splits, sources = {}, []
    for i, (name, given) in enumerate((("train", cfg.train_list), ("val", cfg.val_list),
                                       ("test", cfg.test_list))):
        path = _list_path(cfg, info, i, given)
        if name == "val" and not given and (path is None or not os.path.exists(path)):
            continue                                  # the val list is optional
        if path is None:
            raise FileNotFoundError(f"{info.name} has no default {name} split: pass "
                                    f"--{name}-list")
        splits[name] = read_split(path, f"{info.name} {name} list ({path})")
        sources.append(file_source(path, f"{name}_list"))
        validate_split(splits[name], cfg.data_root, info.num_classes)
    counts = splits["train"].counts(info.num_classes)
    empty = [c for c, n in enumerate(counts) if n == 0]
    if empty:      # training_counts' words: counts of split lists are known once read
        raise DataSizeError(f"dataset {info.name} ({splits['train'].name}): class {empty[0]} "
                            f"would keep 0 training images ({len(empty)} of {info.num_classes} "
                            "classes have none); every class needs at least one")
    make = lambda s, train: ListDataset(s, cfg.data_root, build_transforms(size, train),  # noqa
                                        raw_bytes=raw)
    labels = splits["train"].labels
    prints = data_fingerprint(sources, range(len(labels)), labels)
    return FileData(make(splits["train"], True), make(splits["val"], False) if "val" in splits
                    else None, make(splits["test"], False), counts, info.num_classes, 3,
                    info.mean, info.std, info, size, *prints)
