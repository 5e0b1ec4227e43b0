"""ImageNet-LT / Places-LT / iNaturalist 2018: images on disk listed by split files.

A split is a ``relative/path label`` list, or for iNaturalist 2018 its official COCO-style JSON
(trainables.data.inat), read into the same records (``read_split``). The images are the user's;
the ImageNet-LT / Places-LT lists are the public OLTR ones, shipped gzipped in
``trainables/data/lt_splits`` (except ImageNet_LT_train.txt: the user passes its path). Splits
are validated before training: malformed lines or JSON, labels out of range and missing files
(count and the first few paths) are one-line errors naming the file.
Loading uses a DataLoader with workers, pinned memory and persistent workers; augmentation is
docs/data.md (RandomResizedCrop, flip, ColorJitter(0.4, 0.4, 0.4, 0); test Resize + CenterCrop).
With ``gpu_decode`` the workers only read bytes and JPEGs are decoded batched on the device.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from trainables.data.loader import epoch_seed, shard_slice
from trainables.data.registry import IMAGENET_MEAN, IMAGENET_STD


@dataclass
class SplitList:
    name: str
    paths: list[str]
    labels: list[int]

    def counts(self, num_classes: int) -> list[int]:
        out = [0] * num_classes
        for y in self.labels:
            out[y] += 1
        return out


def read_split_list(path, name: str | None = None) -> SplitList:
    """Parse a ``relative/path label`` list (plain or ``.gz``); malformed lines are reported
    by number."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"split list {path} does not exist")
    paths, labels, bad = [], [], []
    lines = _read_text(path).splitlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdecimal():
            bad.append(i)
            continue
        paths.append(parts[0])
        labels.append(int(parts[1]))
    if bad:
        first = lines[bad[0] - 1].strip()
        raise ValueError(f"{path}: {len(bad)} malformed line(s) (want 'relative/path label', "
                         f"the label an integer), first at line(s) {bad[:5]}: {first[:80]!r}")
    return SplitList(name or path.name, paths, labels)


def read_split(path, name: str | None = None) -> SplitList:
    """A split in either public format, told by its name: COCO-style JSON (``.json`` or
    ``.json.gz``, iNaturalist's train2018.json / val2018.json) or a ``relative/path label``
    list (anything else)."""
    path = Path(path).expanduser()
    if not path.name.endswith((".json", ".json.gz")):
        return read_split_list(path, name)
    if not path.exists():
        raise FileNotFoundError(f"split file {path} does not exist")
    from trainables.data.inat import coco_records
    return SplitList(name or path.name, *coco_records(_read_text(path), path))


def _read_text(path: Path) -> str:
    # the shipped lists (trainables/data/lt_splits) are gzipped; users' lists usually are not
    try:
        if path.suffix == ".gz":
            import gzip
            with gzip.open(path, "rt", encoding="utf-8") as f:
                return f.read()
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start}); want a split list or "
                         "JSON") from None


def validate_split(split: SplitList, root, num_classes: int, check_files: bool = True) -> None:
    """Labels within [0, num_classes) and every image present under ``root``."""
    out_of_range = [(i, y) for i, y in enumerate(split.labels) if not 0 <= y < num_classes]
    if out_of_range:
        i, y = out_of_range[0]
        raise ValueError(f"{split.name}: {len(out_of_range)} label(s) outside [0, {num_classes})"
                         f", first: entry {i + 1} '{split.paths[i]}' has label {y}")
    if check_files:
        root = Path(root).expanduser()
        missing = [p for p in split.paths if not (root / p).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{split.name}: {len(missing)} of {len(split.paths)} images missing under "
                f"{root} on node {os.uname().nodename}, e.g. {missing[:3]}")


# =========================================================================================
# datasets and loaders
# =========================================================================================
def build_transforms(image_size: int, train: bool):
    import torchvision.transforms as T
    norm = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    if train:
        return T.Compose([T.RandomResizedCrop(image_size), T.RandomHorizontalFlip(),
                          T.ColorJitter(0.4, 0.4, 0.4, 0), T.ToTensor(), norm])
    return T.Compose([T.Resize(int(round(image_size * 256 / 224))), T.CenterCrop(image_size),
                      T.ToTensor(), norm])


class ListDataset(torch.utils.data.Dataset):
    """Images of a split list; returns (tensor, label), or (raw bytes, label) for GPU decode."""

    def __init__(self, split: SplitList, root, transform=None, raw_bytes: bool = False):
        self.split, self.root = split, Path(root).expanduser()
        self.transform, self.raw_bytes = transform, raw_bytes

    def __len__(self):
        return len(self.split.paths)

    def __getitem__(self, i):
        path = self.root / self.split.paths[i]
        if self.raw_bytes:
            import torchvision.io as io
            return io.read_file(str(path)), self.split.labels[i]
        from PIL import Image
        with Image.open(path) as im:
            return self.transform(im.convert("RGB")), self.split.labels[i]


def _collate_bytes(batch):
    return [b for b, _ in batch], torch.tensor([y for _, y in batch])


class _EpochSampler(torch.utils.data.Sampler):
    """Shuffles with a generator seeded by (seed, epoch), like the device loader."""

    def __init__(self, n: int, shuffle: bool, seed: int):
        self.n, self.shuffle, self.seed, self.epoch = n, shuffle, seed, 0

    def __len__(self):
        return self.n

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.n))
        g = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        return iter(torch.randperm(self.n, generator=g).tolist())


class _ShardBatches(torch.utils.data.Sampler):
    """Data parallelism: this worker's non-empty slices of the global batches of the epoch's
    permutation (the same permutation as ``_EpochSampler`` draws, whatever the worker count)."""

    def __init__(self, epochs: _EpochSampler, batch_size: int, shard: tuple[int, int]):
        self.epochs, self.batch_size, self.shard = epochs, batch_size, shard

    def __len__(self):
        return sum(1 for _ in self)

    def __iter__(self):
        order = list(self.epochs)
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            part = batch[shard_slice(len(batch), self.shard)]
            if part:
                yield part


class FileLoader:
    """DataLoader over a ListDataset that yields device tensors; ``set_epoch`` makes order and
    worker augmentation seeds depend on (seed, epoch) only."""

    def __init__(self, dataset: ListDataset, batch_size: int, *, shuffle: bool, seed: int,
                 num_workers: int, device, channels_last: bool = False, image_size: int = 224,
                 train: bool = False, shard: tuple[int, int] | None = None):
        self.device, self.channels_last, self.seed = torch.device(device), channels_last, seed
        self.sampler = _EpochSampler(len(dataset), shuffle, seed)
        self.shard, self.batch_size, self.global_batch = shard, batch_size, 0
        self.image_size = image_size
        self.generator = torch.Generator()
        self.set_epoch(0)
        self.gpu_decode = dataset.raw_bytes
        self.gpu_tf = (image_size, train)
        batching = dict(batch_size=batch_size, sampler=self.sampler, drop_last=False) \
            if shard is None else dict(batch_sampler=_ShardBatches(self.sampler, batch_size, shard))
        self.loader = torch.utils.data.DataLoader(
            dataset, **batching, num_workers=num_workers,
            pin_memory=self.device.type == "cuda", persistent_workers=num_workers > 0,
            generator=self.generator, collate_fn=_collate_bytes if dataset.raw_bytes else None)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.epoch = epoch
        self.epoch_seed = epoch_seed(self.seed, epoch, stream=1)
        self.generator.manual_seed(self.epoch_seed)

    def __len__(self):
        """Global batches per epoch: the same on every worker (steps stay in lockstep)."""
        return -(-len(self.sampler) // self.batch_size)

    def __iter__(self):
        if self.loader.num_workers == 0:
            # in-process transforms draw from the global torch RNG: seed it for this epoch
            # (workers get their seeds from self.generator instead)
            torch.manual_seed(self.epoch_seed)
        n, step = len(self.sampler), 0
        for x, y in self.loader:
            self.global_batch = min(self.batch_size, n - step * self.batch_size)
            step += 1
            if self.gpu_decode:
                x = decode_batch(x, self.device, *self.gpu_tf)
            x = x.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y.to(self.device, non_blocking=True)
        for step in range(step, len(self)):   # a worker whose slice of the last batch is empty
            self.global_batch = min(self.batch_size, n - step * self.batch_size)
            yield (torch.empty(0, 3, self.image_size, self.image_size, device=self.device),
                   torch.empty(0, dtype=torch.long, device=self.device))


def decode_batch(encoded, device, image_size: int, train: bool) -> torch.Tensor:
    """Decode JPEG bytes on ``device`` (nvjpeg on CUDA) and apply the transforms there."""
    import torchvision.io as io
    import torchvision.transforms.v2 as T2
    imgs = io.decode_jpeg(encoded, mode=io.ImageReadMode.RGB, device=device)
    tf = T2.Compose([T2.RandomResizedCrop(image_size, antialias=True), T2.RandomHorizontalFlip(),
                     T2.ColorJitter(0.4, 0.4, 0.4, 0)] if train else
                    [T2.Resize(int(round(image_size * 256 / 224)), antialias=True),
                     T2.CenterCrop(image_size)])
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(3, 1, 1)
    return torch.stack([(tf(im).float() / 255 - mean) / std for im in imgs])
