"""Data-parallel trials: one trial = a Ray Train ``TorchTrainer`` of N workers inside Ray Tune.

With Ray 2.60 (Train V2) a Train run inside Tune is launched from a Tune function trainable: the
trial (``train_trial_distributed``) is a light driver that calls ``TorchTrainer(...).fit()``;
``TuneReportCallback`` forwards rank 0's metrics (and its checkpoint's path) to Tune. Ray Train
places the N workers as one placement group (all or none), restarts them after a worker or node
failure (``FailureConfig``) from the last checkpoint, and restores that checkpoint when the same
Train run (same storage folder, inside the Tune trial's folder) is started again by a Tune retry
or a study resume.

Each worker runs the single-process engine with a ``trainables.dist.Dist`` hook (what the
workers agree on, and how, is described there) and reports through the checkpoint sink.
"""
from __future__ import annotations

import math
import os
import tempfile

import torch

from trainables.checkpoints import TRAIN_RUN_DIR, write_epoch
from trainables.config import TrialConfig
from trainables.dist import Dist
from trainables.faults import maybe_inject_fault
from trainables.methods import flatten_trial
from trainables.ray_layer.private import node_id, trial_storage
from trainables.ray_layer.storage import state_of
from trainables.results import trial_static_fields

DRIVER_CPUS = 0.25   # the Tune trial only waits on the Train controller


def train_worker(config: dict) -> None:
    """One Ray Train worker: the engine with a Dist hook; rank 0 writes the checkpoints."""
    import ray.train
    import ray.train.torch

    from trainables.engine import Trainer
    cfg = TrialConfig.from_dict(flatten_trial(config))
    device = ray.train.torch.get_device() if torch.cuda.is_available() and \
        cfg.device != "cpu" else torch.device("cpu")
    dist = Dist(device=device)
    trainer = Trainer(cfg, device=device, dist=dist)
    state = state_of(ray.train.get_checkpoint())   # the Train run's latest, on a restart
    static = {**trial_static_fields(cfg), "node_id": node_id(), "workers": dist.world,
              "resumed_from_epoch": state["epoch"] if state else 0}
    if state is not None:
        trainer.load_state_dict(state)

    def emit(row: dict, folder) -> None:
        # every worker reports (Train's report is a barrier); the folder name is rank 0's
        # choice, used only where a checkpoint comes with the report
        ray.train.report(row, checkpoint=ray.train.Checkpoint.from_directory(folder)
                         if folder else None,
                         checkpoint_dir_name=f"checkpoint_epoch_{row['epoch']:06d}")

    for m in trainer.epochs():
        write_epoch(trainer, {**m, **static}, cfg, emit)
        if dist.rank == dist.world - 1:   # tests: kill a non-zero rank mid-epoch
            maybe_inject_fault(m["epoch"], f"rank {dist.rank}", trainer)


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
    if workers is not None:
        config = {**config, "workers_per_trial": int(workers)}
    cfg = TrialConfig.from_dict(flatten_trial(config))
    if getattr(cfg, "decouple", None):
        raise ValueError("decouple (cRT/LWS second stage) runs in one process; set "
                         "workers_per_trial=1 for it")
    use_gpu, per = worker_resources(cfg, worker_cpus)
    # the Train run lives inside the trial's folder: a retried or resumed trial finds its
    # checkpoints (outside Tune, in a fresh temporary folder)
    where = trial_storage()
    fs, path = where if where else (None, tempfile.mkdtemp(prefix="elm_train_"))
    trainer = TorchTrainer(
        train_worker, train_loop_config=config,
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(num_workers=cfg.workers_per_trial,
                                               use_gpu=use_gpu, resources_per_worker=per,
                                               placement_strategy="PACK"),
        run_config=ray.train.RunConfig(
            name=TRAIN_RUN_DIR, storage_path=path, storage_filesystem=fs,
            failure_config=ray.train.FailureConfig(max_failures=int(
                os.environ.get("ELM_TRAIN_MAX_FAILURES", "3"))),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            callbacks=[TuneReportCallback()]))
    trainer.fit()


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
