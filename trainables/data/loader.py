"""A data loader that never leaves the device: uint8 images resident, batched augmentation.

Per batch: gather the images, pad-4 + random 32×32 crop and horizontal flip as ONE indexed
gather (the crop offset and the flip are folded into row/column indices), then float, /255 and
normalise. Each epoch's order and augmentation come from a generator seeded by (seed, epoch)
only, so resuming at epoch k reproduces exactly what an uninterrupted run would have drawn.

Data parallelism (``shard=(rank, world)``): every worker draws the SAME global permutation and
the same augmentation for the whole global batch, then keeps its contiguous slice of each batch
(``shard_slice``). The union of the workers' batches is exactly the single-process batch, so the
global order and augmentation do not depend on the number of workers.
"""
from __future__ import annotations

import math

import torch

PAD = 4


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """The seed of one epoch's draws: a function of (seed, epoch) only, so a run resumed at
    epoch k draws what an uninterrupted one would have. ``stream`` separates independent draws
    of the same epoch (e.g. batch order vs the workers' augmentation). Every (seed, epoch)
    generator of the project is seeded through here."""
    return (seed * 1_000_003 + epoch * 7_919 + stream) % (2**63 - 1)


def shard_slice(n: int, shard: tuple[int, int] | None) -> slice:
    """Worker ``rank``'s contiguous part of a global batch of ``n``: sizes differ by at most
    one (the larger ones first, as ``torch.tensor_split``); may be empty when n < world."""
    if shard is None:
        return slice(0, n)
    rank, world = shard
    q, r = divmod(n, world)
    start = rank * q + min(rank, r)
    return slice(start, start + q + (rank < r))


class DeviceLoader:
    """Batches of (float32 normalised N×C×H×W, labels) from uint8 images already on the device.

    No DataLoader, no PIL, no per-image Python: at CIFAR size one process-free indexed gather per
    batch is far cheaper than worker processes decoding and collating single images.
    ``augment``: zero-pad 4 + random crop + horizontal flip (p=0.5), padding in pixel value 0
    before normalisation (as RandomCrop(32, padding=4) → ToTensor → Normalize).
    """

    def __init__(self, x_uint8: torch.Tensor, y: torch.Tensor, batch_size: int, mean, std, *,
                 augment: bool, shuffle: bool, seed: int = 0, drop_last: bool = False,
                 channels_last: bool = False, shard: tuple[int, int] | None = None):
        if x_uint8.dtype != torch.uint8 or x_uint8.dim() != 4:
            raise ValueError(f"images must be uint8 N×C×H×W, got {x_uint8.dtype} "
                             f"{tuple(x_uint8.shape)}")
        self.x, self.y = x_uint8, y
        self.batch_size, self.augment, self.shuffle = batch_size, augment, shuffle
        self.drop_last, self.channels_last, self.seed = drop_last, channels_last, seed
        self.shard, self.global_batch = shard, 0   # global size of the batch last yielded
        dev = x_uint8.device
        c = x_uint8.shape[1]
        self.mean = torch.tensor(mean, dtype=torch.float32, device=dev).view(1, c, 1, 1) * 255
        self.inv_std = 1.0 / (torch.tensor(std, dtype=torch.float32, device=dev).view(1, c, 1, 1)
                              * 255)
        self.generator = torch.Generator(device=dev)
        self.set_epoch(0)
        if augment:   # padded once: a crop is then a gather from the padded copy
            self.padded = torch.nn.functional.pad(x_uint8, (PAD, PAD, PAD, PAD))

    def set_epoch(self, epoch: int) -> None:
        """Re-seed from (seed, epoch): the epoch's order and augmentation depend on nothing else."""
        self.generator.manual_seed(epoch_seed(self.seed, epoch))

    def __len__(self) -> int:
        """Number of batches per epoch."""
        n = self.y.shape[0]
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _augment(self, idx: torch.Tensor, part: slice = slice(None)) -> torch.Tensor:
        """Draws for the whole global batch ``idx`` (same generator stream for any number of
        workers), then keeps this worker's ``part``."""
        b, (h, w) = idx.shape[0], self.x.shape[2:]
        g, dev = self.generator, idx.device
        oy = torch.randint(0, 2 * PAD + 1, (b, 1), generator=g, device=dev)[part]
        ox = torch.randint(0, 2 * PAD + 1, (b, 1), generator=g, device=dev)[part]
        flip = (torch.rand(b, 1, generator=g, device=dev) < 0.5)[part]
        idx = idx[part]
        ar_h, ar_w = torch.arange(h, device=dev), torch.arange(w, device=dev)
        rows = oy + ar_h                                              # (B, H)
        cols = ox + torch.where(flip, w - 1 - ar_w, ar_w)             # (B, W), flipped in place
        out = self.padded[idx[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # B,H,W,C
        return out.permute(0, 3, 1, 2)

    def __iter__(self):
        """One epoch, drawn from the generator as seeded by the last ``set_epoch``."""
        n = self.y.shape[0]
        order = torch.randperm(n, generator=self.generator, device=self.x.device) \
            if self.shuffle else torch.arange(n, device=self.x.device)
        stop = len(self) * self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            idx = order[start:start + self.batch_size]
            self.global_batch, part = idx.shape[0], shard_slice(idx.shape[0], self.shard)
            x = self._augment(idx, part) if self.augment else self.x[idx[part]]
            idx = idx[part]
            x = (x.float() - self.mean) * self.inv_std
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            else:
                x = x.contiguous()
            yield x, self.y[idx]
