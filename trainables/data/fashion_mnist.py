"""Fashion-MNIST from idx files: the embedded real dataset (Debian's dataset-fashion-mnist).

Images are zero-padded 28×28 → 32×32 and kept grey (one channel: the ResNet32 stem takes
``in_channels=1``, which is cheaper than replicating to three).
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from trainables.data.fingerprint import read_source
from trainables.data.raw import RawSplits

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
# Where to look, in order: data_root itself, these folders under it, then DEBIAN_DIR, but only
# when data_root is TrialConfig's default: a path the user gave is used or refused, never
# replaced by another copy found elsewhere (all read at call time, so tests can monkeypatch).
ROOT_SUBDIRS = ("fashion_mnist", "FashionMNIST/raw")
DEFAULT_ROOT = "./data"     # TrialConfig.data_root's default
FILES = {"train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
         "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte"}


def search_dirs(data_root: str) -> list[Path]:
    """The folders searched for the four idx files, in order."""
    root = Path(data_root).expanduser()
    default = os.path.normpath(data_root) == os.path.normpath(DEFAULT_ROOT)
    return [root] + [root / d for d in ROOT_SUBDIRS] + ([Path(DEBIAN_DIR)] if default else [])


def read_idx(path: Path, sources: list | None = None) -> np.ndarray:
    """An idx file (plain or .gz): magic 0x00000800 | ndim, big-endian dims, uint8 data. Its
    Source (named as the file without .gz; the digest of the decompressed content) is
    appended to ``sources`` when given."""
    data, src = read_source(path, path.name[:-3] if path.suffix == ".gz" else path.name)
    if sources is not None:
        sources.append(src)
    magic, = struct.unpack(">I", data[:4])
    if magic >> 8 != 0x08:
        raise ValueError(f"{path} is not a uint8 idx file (magic {magic:#x})")
    ndim = magic & 0xFF
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    if len(data) != 4 + 4 * ndim + int(np.prod(dims)):
        raise ValueError(f"{path}: {len(data)} bytes do not match the header's dims {dims}")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).exists():
            return folder / name
    return None


def locate_fashion_mnist(data_root: str, download: bool) -> Path | None:
    """The first folder of ``search_dirs`` holding all four idx files (plain or .gz); None if
    there is none but ``download`` will fetch them; else FileNotFoundError saying where."""
    dirs = search_dirs(data_root)
    folder = next((d for d in dirs if all(_find(d, f) for f in FILES.values())), None)
    if folder is None and not download:
        raise FileNotFoundError(
            "Fashion-MNIST idx files not found; looked in " + ", ".join(map(str, dirs)) +
            f". Pass --download (download=true) to fetch them into data_root, or leave "
            f"data_root at its default ({DEFAULT_ROOT}) to use Debian's {DEBIAN_DIR} "
            "(apt-get install dataset-fashion-mnist).")
    return folder


def read_fashion_mnist(data_root: str, download: bool) -> RawSplits:
    """Train/test as N×1×32×32 uint8 (28×28 zero-padded by 2 px) and int64 labels, from the
    folder ``locate_fashion_mnist`` finds; torchvision downloads them into ``data_root`` only
    when ``download`` and none is found."""
    folder = locate_fashion_mnist(data_root, download)
    if folder is None:
        import torchvision
        torchvision.datasets.FashionMNIST(str(Path(data_root).expanduser()), download=True)
        folder = locate_fashion_mnist(data_root, False)
    sources: list = []
    arr = {k: read_idx(_find(folder, f), sources) for k, f in FILES.items()}
    for split in ("train", "test"):
        x, y = arr[split + "_x"], arr[split + "_y"]
        if x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != (x.shape[0],):
            raise ValueError(f"{folder}: {split} images {x.shape} / labels {y.shape} are not "
                             "N×28×28 / N")
    pad = lambda x: np.pad(x, ((0, 0), (2, 2), (2, 2)))[:, None]   # noqa: E731
    return RawSplits(pad(arr["train_x"]), arr["train_y"].astype(np.int64),
                     pad(arr["test_x"]), arr["test_y"].astype(np.int64), sources)
