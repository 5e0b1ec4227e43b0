"""Data parallelism as the engine sees it: rank, world size and the reductions it needs.

Pure ``torch.distributed`` (gloo on CPU, NCCL on GPUs), no Ray: the Ray Train worker
(trainables.ray_layer.train_driver) and ``bench/ddp_scaling.py`` (torch.multiprocessing) both
hand a :class:`Dist` to ``engine.Trainer(dist=...)``. What it guarantees, and why:

- data: every worker draws the same (seed, epoch) permutation and keeps its slice of each global
  batch (trainables.data.loader.shard_slice): global batch = batch_size, order independent of N;
- gradients: DDP averages them; each worker's loss is weighted by its share of the global batch
  (``share``), so a step equals the single-process step on the same global batch, also for an
  uneven last batch;
- BatchNorm: per worker (the recipe) or SyncBatchNorm (``sync_bn``, GPUs only);
- global loss state: EQLv2's accumulated gradients are all-reduced every step; DRW/IB weights
  depend only on the global class counts and the epoch, so they agree without communication;
- evaluation: each worker evaluates its shard; hit counts and sums are all-reduced (exact).
Checkpoints hold the unwrapped model, so they load at any N (and in a single process).
"""
from __future__ import annotations

import torch
import torch.distributed as tdist


class Dist:
    """What the engine needs to know about data parallelism: rank, world and reductions.
    Built on an initialised ``torch.distributed`` process group (gloo on CPU, NCCL on GPUs)."""

    def __init__(self, rank: int | None = None, world: int | None = None, device=None):
        self.rank = tdist.get_rank() if rank is None else rank
        self.world = tdist.get_world_size() if world is None else world
        self.device = torch.device(device or "cpu")

    @property
    def shard(self) -> tuple[int, int]:
        return self.rank, self.world

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        """In-place sum over the workers (also handed to losses with global state)."""
        tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
        return t

    def setup(self, model, criterion, sync_bn: bool):
        """(model to save/evaluate, DDP forward). SyncBN keeps the parameters' identity, so the
        optimizer built before stays valid, and the state_dict keys are unchanged."""
        if sync_bn:
            if self.device.type == "cpu":
                raise ValueError("sync_bn=true needs GPUs (torch's SyncBatchNorm has no CPU "
                                 "kernel); on CPU use per-worker BN (sync_bn=false)")
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        if hasattr(criterion, "all_reduce"):
            criterion.all_reduce = self.all_reduce
        ids = [self.device.index or 0] if self.device.type == "cuda" else None
        return model, torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def share(self, loss, logits, n_local: int, n_global: int):
        """(loss for the metrics, loss for backward). DDP averages gradients over workers, so
        the mean loss of n_local images counts n_local·world/n_global: the average is then the
        global batch's mean. A worker with an empty slice still joins the all-reduce."""
        if n_local == 0:
            zero = logits.sum() * 0.0
            return zero.detach(), zero
        return loss, loss * (n_local * self.world / n_global)

    def sum_epoch(self, loss_sum, correct, seen: int):
        """The epoch's training sums over all workers (one all-reduce)."""
        t = torch.stack([loss_sum.double(), correct.double(),
                         torch.tensor(float(seen), dtype=torch.float64, device=loss_sum.device)])
        self.all_reduce(t)
        return t[0], int(t[1]), int(t[2])

    def sync_buffers(self, model) -> None:
        """BN running statistics from rank 0 (each worker updated its own in training), so
        every worker evaluates, and rank 0 saves, the same model."""
        for b in model.buffers():
            tdist.broadcast(b, src=0)

    def sum_state(self, *accumulators, n: int = 0) -> int:
        """All-reduce every tensor of the metric accumulators (counts and sums); returns the
        global image count. Integer counts make the accuracies exactly single-process ones."""
        for acc in accumulators:
            for v in vars(acc).values():
                if isinstance(v, torch.Tensor):   # every one of them is a count or a sum
                    self.all_reduce(v)
        t = torch.tensor([n], dtype=torch.long, device=self.device)
        return int(self.all_reduce(t))
