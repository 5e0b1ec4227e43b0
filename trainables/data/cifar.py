"""CIFAR-10/100 from the standard python pickle folders (``cifar-10-batches-py``,
``cifar-100-python``), read directly: no torchvision Dataset, no PIL."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from trainables.data.fingerprint import read_source
from trainables.data.raw import RawSplits

_LAYOUT = {
    10: ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
         b"labels", "CIFAR10"),
    100: ("cifar-100-python", ["train"], ["test"], b"fine_labels", "CIFAR100"),
}
URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


def _read(files, label_key, sources: list):
    """Images and labels of ``files`` concatenated in order; each file's Source (named
    ``<folder>/<file>``, its sha256 from the bytes read) appended to ``sources``."""
    xs, ys = [], []
    for f in files:
        data, src = read_source(f, f"{f.parent.name}/{f.name}")
        sources.append(src)
        d = pickle.loads(data, encoding="bytes")
        xs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(d[label_key], dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def _missing(data_root: str, num_classes: int) -> tuple[Path, list[str]]:
    folder, train, test, _, _ = _LAYOUT[num_classes]
    base = Path(data_root).expanduser() / folder
    return base, [n for n in train + test if not (base / n).exists()]


def locate_cifar(data_root: str, download: bool, num_classes: int) -> Path:
    """The folder that holds (or, with ``download``, will hold) CIFAR's files; reads nothing.
    FileNotFoundError saying where and how when they are missing and ``download`` is off."""
    base, missing = _missing(data_root, num_classes)
    if missing and not download:
        raise FileNotFoundError(
            f"CIFAR-{num_classes} files {missing} are missing from {base}. Pass --download "
            f"(download=true) to fetch them with torchvision, or extract the python version "
            f"from {URL} so that {base} holds them (data_root={data_root!r}).")
    return base


def read_cifar(data_root: str, download: bool, num_classes: int) -> RawSplits:
    """CIFAR-``num_classes`` as uint8 N×3×32×32 (rows are R,G,B planes of 1024 bytes) and int64
    labels. Missing files: fetched by torchvision when ``download``, else FileNotFoundError."""
    _, train, test, key, tv_name = _LAYOUT[num_classes]
    base, missing = _missing(data_root, num_classes)
    if missing and download:
        import torchvision
        getattr(torchvision.datasets, tv_name)(str(Path(data_root).expanduser()), download=True)
    locate_cifar(data_root, False, num_classes)      # still missing after a download: refuse
    sources: list = []
    tx, ty = _read([base / n for n in train], key, sources)
    vx, vy = _read([base / n for n in test], key, sources)
    return RawSplits(tx, ty, vx, vy, sources)


def locate_cifar10(data_root: str, download: bool) -> Path:
    return locate_cifar(data_root, download, 10)


def locate_cifar100(data_root: str, download: bool) -> Path:
    return locate_cifar(data_root, download, 100)


def read_cifar10(data_root: str, download: bool) -> RawSplits:
    """CIFAR-10 from ``<data_root>/cifar-10-batches-py`` (data_batch_1..5, test_batch)."""
    return read_cifar(data_root, download, 10)


def read_cifar100(data_root: str, download: bool) -> RawSplits:
    """CIFAR-100 (fine labels) from ``<data_root>/cifar-100-python`` (train, test)."""
    return read_cifar(data_root, download, 100)
