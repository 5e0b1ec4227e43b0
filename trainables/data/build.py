"""From a TrialConfig to device-resident splits and loaders (raw reads cached per process)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from trainables.data.imbalance import class_counts, split_validation, subsample_indices
from trainables.data.loader import DeviceLoader
from trainables.data.registry import DatasetInfo, get_dataset

_RAW_CACHE: dict = {}   # Ray reuses worker processes: 480 trials must not re-read the files


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


def read_raw(info: DatasetInfo, data_root: str, download: bool):
    key = (info.name, os.path.abspath(os.path.expanduser(data_root)))
    if key not in _RAW_CACHE:
        _RAW_CACHE[key] = info.read(data_root, download)
    return _RAW_CACHE[key]


def build_data(cfg, device) -> TrialData:
    """The imbalanced train split (SPEC 4), optional validation hold-out, the full test set."""
    info = get_dataset(cfg.dataset)
    raw = read_raw(info, cfg.data_root, cfg.download)
    img_max = cfg.img_max if cfg.img_max is not None else info.img_max
    counts = class_counts(info.num_classes, img_max, cfg.imb_type, cfg.ratio)
    idx = subsample_indices(raw.train_y, counts, cfg.data_seed)
    train_idx, val_idx = split_validation(idx, raw.train_y, cfg.val_fraction, cfg.data_seed)
    to = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)   # noqa: E731
    used = np.bincount(raw.train_y[train_idx], minlength=info.num_classes)
    return TrialData(
        train_x=to(raw.train_x[train_idx]), train_y=to(raw.train_y[train_idx]),
        val_x=to(raw.train_x[val_idx]) if len(val_idx) else None,
        val_y=to(raw.train_y[val_idx]) if len(val_idx) else None,
        test_x=to(raw.test_x), test_y=to(raw.test_y), class_counts=[int(n) for n in used],
        num_classes=info.num_classes, channels=info.channels, mean=info.mean, std=info.std,
        info=info)


def make_loaders(data: TrialData, cfg, device=None):
    """(train loader, {'test': ..., 'val': ...}) over the device-resident tensors."""
    train = DeviceLoader(data.train_x, data.train_y, cfg.batch_size, data.mean, data.std,
                         augment=cfg.augment, shuffle=True, seed=cfg.seed,
                         channels_last=cfg.channels_last)
    evals = {"test": DeviceLoader(data.test_x, data.test_y, cfg.eval_batch_size, data.mean,
                                  data.std, augment=False, shuffle=False,
                                  channels_last=cfg.channels_last)}
    if data.val_x is not None:
        evals["val"] = DeviceLoader(data.val_x, data.val_y, cfg.eval_batch_size, data.mean,
                                    data.std, augment=False, shuffle=False,
                                    channels_last=cfg.channels_last)
    return train, evals
