"""A tiny, deterministic, learnable dataset for tests: 10 classes, 3×32×32 uint8, 100 train
images per class (the registry's img_max, so every imbalance setting can be drawn) and 20 test
images per class. Each class has its own colour and stripe orientation, plus Gaussian noise.
Built with whole-array numpy (~0.06 s), fixed seed, so every process gets the same images."""
from __future__ import annotations

import numpy as np

from trainables.data.raw import RawSplits


def _make(n_per_class: int, rng: np.random.Generator):
    xs, ys = [], []
    yy, xx = np.mgrid[0:32, 0:32]
    for c in range(10):
        colour = np.array([(c * 37) % 256, (c * 91) % 256, (c * 53 + 80) % 256], np.float32)
        stripes = np.sin((xx * np.cos(c * 0.6) + yy * np.sin(c * 0.6)) * (0.4 + 0.05 * c))
        base = colour[:, None, None] * 0.6 + 60 * stripes[None]
        noise = rng.normal(0, 25, (n_per_class, 3, 32, 32))
        xs.append(np.clip(base[None] + noise + 50, 0, 255).astype(np.uint8))
        ys.append(np.full(n_per_class, c, np.int64))
    return np.concatenate(xs), np.concatenate(ys)


# what makes the images (with _make's code): the fingerprint's source for this dataset
GENERATOR = {"generator": "trainables.data.synthetic v1", "seed": 12345, "classes": 10,
             "train_per_class": 100, "test_per_class": 20}


def read_synthetic(data_root: str = "", download: bool = False) -> RawSplits:
    """The synthetic splits; both arguments are ignored (nothing is read or fetched)."""
    from trainables.data.fingerprint import generator_source
    rng = np.random.default_rng(GENERATOR["seed"])
    tx, ty = _make(GENERATOR["train_per_class"], rng)
    vx, vy = _make(GENERATOR["test_per_class"], rng)
    return RawSplits(tx, ty, vx, vy, [generator_source("synthetic", GENERATOR)])
