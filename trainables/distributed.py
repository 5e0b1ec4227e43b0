"""Data-parallel trials: one trial = a Ray Train ``TorchTrainer`` of N workers inside Ray Tune.

With Ray 2.60 (Train V2) a Train run inside Tune is launched from a Tune function trainable: the
trial (``train_trial_distributed``) is a light driver that calls ``TorchTrainer(...).fit()``;
``TuneReportCallback`` forwards rank 0's metrics (and its checkpoint's path) to Tune. Ray Train
places the N workers as one placement group (all or none), restarts them after a worker or node
failure (``FailureConfig``) from the last checkpoint, and restores that checkpoint when the same
Train run (same storage folder, inside the Tune trial's folder) is started again by a Tune retry
or a study resume.

Each worker runs the single-process engine with a ``Dist`` hook (engine.Trainer(dist=...)):
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

import math
import os
import tempfile
from pathlib import Path

import torch
import torch.distributed as tdist

from trainables.config import TrialConfig

DRIVER_CPUS = 0.25   # the Tune trial only waits on the Train controller


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


# =========================================================================================
# Ray Train worker loop, Tune driver, scheduling
# =========================================================================================
def _worker_checkpoint_state():
    """The trial state of the Train run's latest checkpoint, or None on a fresh start."""
    import ray.train
    from trainables.trainable import CHECKPOINT_FILE, newest_good_state
    ckpt = ray.train.get_checkpoint()
    if ckpt is None:
        return None
    with ckpt.as_directory() as d:
        return newest_good_state([Path(d) / CHECKPOINT_FILE])


def train_worker(config: dict) -> None:
    """One Ray Train worker: the engine with a Dist hook; rank 0 writes the checkpoints."""
    import ray.train
    import ray.train.torch
    from trainables.engine import Trainer
    from trainables.methods import flatten_trial
    from trainables.trainable import _node_id, maybe_inject_fault, trial_static_fields
    cfg = TrialConfig.from_dict(flatten_trial(config))
    device = ray.train.torch.get_device() if torch.cuda.is_available() and \
        cfg.device != "cpu" else torch.device("cpu")
    dist = Dist(device=device)
    trainer = Trainer(cfg, device=device, dist=dist)
    state = _worker_checkpoint_state()
    static = {**trial_static_fields(cfg), "node_id": _node_id(), "workers": dist.world,
              "resumed_from_epoch": state["epoch"] if state else 0}
    if state is not None:
        trainer.load_state_dict(state)
    for m in trainer.epochs():
        _report(trainer, {**m, **static}, cfg, dist.rank)
        if dist.rank == dist.world - 1:   # tests: kill a non-zero rank mid-epoch
            maybe_inject_fault(m["epoch"], f"rank {dist.rank}", trainer)


def _report(trainer, metrics: dict, cfg: TrialConfig, rank: int) -> None:
    """Every worker reports (Train's report is a barrier); only rank 0 attaches a checkpoint.
    As the single-process trainable: strict JSON rows, the final confusion matrix beside the
    last checkpoint's weights."""
    import json

    import ray.train

    from trainables.jsonio import finite_or_none
    from trainables.trainable import CHECKPOINT_FILE, CONFUSION_FILE
    metrics = finite_or_none(metrics)
    if not cfg.checkpoint_due(metrics):
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = None
        if rank == 0:
            trainer.save(Path(tmp) / CHECKPOINT_FILE)
            if metrics["done"] and trainer.confusion:
                (Path(tmp) / CONFUSION_FILE).write_text(json.dumps(trainer.confusion))
            ckpt = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(metrics, checkpoint=ckpt,
                         checkpoint_dir_name=f"checkpoint_epoch_{metrics['epoch']:06d}")


def worker_resources(cfg: TrialConfig, worker_cpus: float) -> tuple[bool, dict]:
    """(use_gpu, resources per worker): one GPU per worker where the cluster has GPUs."""
    import ray
    gpus = ray.cluster_resources().get("GPU", 0) if ray.is_initialized() else 0
    use_gpu = gpus > 0 and cfg.device != "cpu"
    per = {"CPU": float(worker_cpus)}
    if use_gpu:
        per["GPU"] = 1.0
    return use_gpu, per


def train_trial_distributed(config: dict, worker_cpus: float = 1.0,
                            workers: int | None = None) -> None:
    """Tune function trainable for workers_per_trial > 1: runs the trial as a TorchTrainer.
    ``workers`` (the study's --workers-per-trial) overrides the config's workers_per_trial: a
    runtime field, so trial keys and results do not change with it."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback
    from trainables.methods import flatten_trial
    from trainables.trainable import _trial_storage
    if workers is not None:
        config = {**config, "workers_per_trial": int(workers)}
    cfg = TrialConfig.from_dict(flatten_trial(config))
    if getattr(cfg, "decouple", None):
        raise ValueError("decouple (cRT/LWS second stage) runs in one process; set "
                         "workers_per_trial=1 for it")
    use_gpu, per = worker_resources(cfg, worker_cpus)
    where = _trial_storage()   # the Train run lives inside the trial's folder: a retried or
    fs, path = where if where else (None, tempfile.mkdtemp(prefix="elm_train_"))  # resumed trial
                                                                       # finds its checkpoints
    trainer = TorchTrainer(
        train_worker, train_loop_config=config,
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(num_workers=cfg.workers_per_trial,
                                               use_gpu=use_gpu, resources_per_worker=per,
                                               placement_strategy="PACK"),
        run_config=ray.train.RunConfig(
            name="train", storage_path=path, storage_filesystem=fs,
            failure_config=ray.train.FailureConfig(max_failures=int(
                os.environ.get("ELM_TRAIN_MAX_FAILURES", "3"))),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            callbacks=[TuneReportCallback()]))
    trainer.fit()


def trainable_for(resources: dict, workers: int):
    """(trainable, max_concurrent cap or None) for a Tuner.

    workers == 1: today's single-process trainable with ``resources`` ({"cpu", "gpu"}).
    workers > 1: the Train driver, which itself holds only DRIVER_CPUS; Ray Train reserves the
    N workers (one GPU each where the cluster has GPUs, ``cpu`` CPUs each) as one placement
    group. The cap keeps Tune from starting drivers whose workers cannot be placed."""
    from ray import tune
    if workers < 1:
        raise ValueError(f"workers_per_trial={workers} is out of range: must be >= 1")
    if workers == 1:
        from trainables.trainable import train_trial
        return tune.with_resources(train_trial, resources), None
    driver = tune.with_parameters(train_trial_distributed, workers=workers,
                                  worker_cpus=float(resources.get("cpu", 1.0)))
    return (tune.with_resources(driver, {"cpu": DRIVER_CPUS}),
            max_trials_that_fit(resources, workers))


def max_trials_that_fit(resources: dict, workers: int, cluster: dict | None = None) -> int:
    """Largest number of N-worker trials the cluster holds at once (for --dry-run and the
    concurrency cap): by GPUs where it has GPUs, else by CPUs (the drivers' share included)."""
    import ray
    if cluster is None:
        cluster = ray.cluster_resources() if ray.is_initialized() else {}
    gpus, cpus = cluster.get("GPU", 0), cluster.get("CPU", 0)
    cpu_each = float(resources.get("cpu", 1.0)) * workers + DRIVER_CPUS
    by_cpu = math.floor(cpus / cpu_each) if cpu_each else 0
    if gpus:
        return max(0, min(math.floor(gpus / workers), by_cpu))
    return max(0, by_cpu)
