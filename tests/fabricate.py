"""Tiny datasets in their real on-disk formats, for tests (no downloads here)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def write_pickle(path, obj):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)


def fabricate_cifar(root: Path, classes: int, per_file=20, seed=0):
    rng = np.random.default_rng(seed)
    rows = {}
    if classes == 10:
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        for n in names:
            data = rng.integers(0, 256, (per_file, 3072), dtype=np.uint8)
            labels = rng.integers(0, 10, per_file).tolist()
            write_pickle(folder / n, {b"data": data, b"labels": labels, b"batch_label": b"x"})
            rows[n] = (data, labels)
        write_pickle(folder / "batches.meta", {b"label_names": [b"c"] * 10})
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True)
        for n in ("train", "test"):
            data = rng.integers(0, 256, (per_file, 3072), dtype=np.uint8)
            fine = rng.integers(0, 100, per_file).tolist()
            write_pickle(folder / n, {b"data": data, b"fine_labels": fine,
                                      b"coarse_labels": [f // 5 for f in fine]})
            rows[n] = (data, fine)
        write_pickle(folder / "meta", {b"fine_label_names": [b"c"] * 100})
    return rows


def fabricate_places_tree(root, classes: int = 365, per_class_train=(1,), test_per_class=1):
    """A tiny image tree with split lists in the real format (Places-LT: 365 classes)."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    lines = {"train": [], "test": []}
    for split, per in (("train", per_class_train), ("test", (test_per_class,))):
        for c in range(classes):
            for k in range(per[c % len(per)]):
                rel = f"{split}/class_{c:03d}/{k:04d}.jpg"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / rel)
                lines[split].append(f"{rel} {c}")
    for split, ls in lines.items():
        (root / f"Places_LT_{split}.txt").write_text("\n".join(ls) + "\n")
    return root
