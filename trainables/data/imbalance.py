"""Long-tailed / step imbalance of a balanced training set, exactly as LDAM-DRW (docs/data.md)."""
from __future__ import annotations

import numpy as np

IMB_TYPES = ("lt", "step")


def class_counts(num_classes: int, img_max: int, imb_type: str, ratio: float) -> list[int]:
    """Images kept per class; class 0 is the head. Truncation (``int``), never rounding."""
    factor = 1.0 / ratio
    if imb_type == "lt":
        return [int(img_max * factor ** (i / (num_classes - 1.0))) for i in range(num_classes)]
    if imb_type == "step":
        half = num_classes // 2
        return [int(img_max)] * half + [int(img_max * factor)] * (num_classes - half)
    raise ValueError(f"imb_type={imb_type!r} is not valid; choose one of {list(IMB_TYPES)}")


def subsample_indices(targets: np.ndarray, counts, data_seed: int) -> np.ndarray:
    """Indices kept, class by class in order: shuffle ``where(targets == c)`` with numpy's
    GLOBAL RNG seeded by ``data_seed`` (as the reference, so the same images are chosen), keep
    the first n_c. The caller's global RNG state is restored afterwards."""
    targets = np.asarray(targets)
    saved = np.random.get_state()
    try:
        np.random.seed(data_seed)
        kept = []
        for c, n in enumerate(counts):
            idx = np.where(targets == c)[0]
            if len(idx) < n:
                raise ValueError(f"class {c} has {len(idx)} images, {n} requested")
            np.random.shuffle(idx)
            kept.append(idx[:n])
        return np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    finally:
        np.random.set_state(saved)


def holdout_size(n: int, val_fraction: float) -> int:
    """Images of a class of ``n`` held out for validation: ``val_fraction`` of them, rounded
    half up, at least 1, never all of them (a class of one keeps its image for training)."""
    if val_fraction <= 0:
        return 0
    return min(max(int(np.floor(val_fraction * n + 0.5)), 1), n - 1)


def split_validation(indices: np.ndarray, targets: np.ndarray, val_fraction: float,
                     data_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``val_fraction`` of each class (round half up, at least 1, never all of it)
    from the training indices, for model selection without touching the test set."""
    indices = np.asarray(indices)
    if val_fraction <= 0:
        return indices, np.zeros(0, dtype=indices.dtype)
    rng = np.random.default_rng(data_seed + 1)
    labels = np.asarray(targets)[indices]
    train, val = [], []
    for c in np.unique(labels):
        idx = indices[labels == c]
        k = holdout_size(len(idx), val_fraction)
        perm = rng.permutation(len(idx))
        val.append(idx[perm[:k]])
        train.append(idx[perm[k:]])
    return np.concatenate(train), np.concatenate(val)
