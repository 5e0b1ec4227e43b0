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

Two Ray 2.60 behaviours shape the driver (docs/distributed.md, "Limits"):
- Tune stops a trial as soon as a result says ``done``, killing the trial's actor while the
  Train controller is still running; the controller dies before it removes its worker
  group's placement group, whose lifetime is the study's job: the resources stay reserved and
  the next trial's worker group never starts. The workers therefore report their rows without
  the engine's ``done`` (``status`` says the same), the trial ends when ``fit`` returns, and a
  sweep in every driver removes groups left by controllers killed anyway (a scheduler's STOP).
- Ray Train retries a worker group that cannot be placed forever (``controller_failure_limit``
  -1); here the retries are bounded (ELM_TRAIN_START_RETRIES) and the trial then fails with
  a :class:`WorkerGroupStartError` naming the request and what the cluster had free.
"""
from __future__ import annotations

import math
import os
import tempfile
import threading

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
MAX_FAILURES_ENV = "ELM_TRAIN_MAX_FAILURES"    # worker failures Ray Train recovers from (3)
START_RETRIES_ENV = "ELM_TRAIN_START_RETRIES"  # worker-group start timeouts retried (4)
START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"   # Ray's, per try (60 s)
SWEEP_EVERY_S = 5.0


class WorkerGroupStartError(RuntimeError):
    """A data-parallel trial's worker group could not be placed within its bounded wait."""


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        raise ValueError(f"{name}={os.environ[name]!r} is not an integer") from None


def _start_timeout_s() -> float:
    try:
        return float(os.environ.get(START_TIMEOUT_ENV, 60.0))
    except ValueError:
        return 60.0


def train_worker(config: dict) -> None:
    """One Ray Train worker: the engine with a Dist hook; rank 0 writes the checkpoints."""
    import ray
    import ray.train
    import ray.train.torch

    from trainables.cost import hold_of
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
    # the trial's cost: what this worker holds, times the workers (trainables.cost)
    trainer.meter.hold(*hold_of(ray.get_runtime_context().get_assigned_resources(), device,
                                workers=dist.world))

    def emit(row: dict, folder) -> None:
        # every worker reports (Train's report is a barrier); the folder name is rank 0's
        # choice, used only where a checkpoint comes with the report. Not ``done``: Tune
        # would stop (kill) the trial at that row, before the controller releases the
        # worker group (module docstring); the row's ``status`` says it finished.
        row = {k: v for k, v in row.items() if k != "done"}
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
            failure_config=ray.train.FailureConfig(
                max_failures=_env_int(MAX_FAILURES_ENV, 3),
                # worker-group start timeouts: Ray's default -1 retries them forever
                controller_failure_limit=_env_int(START_RETRIES_ENV, 4)),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            callbacks=[TuneReportCallback()]))
    stop = threading.Event()
    threading.Thread(target=_sweep_orphaned_worker_groups, args=(stop,), daemon=True,
                     name="elm-release-orphaned-worker-groups").start()
    try:
        trainer.fit()
    except Exception as e:
        from trainables.ray_layer.private import is_worker_group_start_timeout
        if not is_worker_group_start_timeout(e):
            raise
        raise WorkerGroupStartError(_start_failure_line(cfg.workers_per_trial, per)) from e
    finally:
        stop.set()


def _start_failure_line(workers: int, per: dict) -> str:
    """One line: what the worker group asked for, how long it waited, what was free."""
    import ray
    tries = _env_int(START_RETRIES_ENV, 4) + 1
    try:
        free = {k: round(v, 2) for k, v in ray.available_resources().items()
                if k in ("CPU", "GPU")}
        total = {k: round(v, 2) for k, v in ray.cluster_resources().items()
                 if k in ("CPU", "GPU")}
    except Exception:
        free = total = "?"
    return (f"the {workers}-worker group ({per} per worker) could not be placed: {tries} "
            f"tries of {_start_timeout_s():g} s timed out ({START_TIMEOUT_ENV}, "
            f"{START_RETRIES_ENV}); the cluster had {free} free of {total}")


def _sweep_orphaned_worker_groups(stop: threading.Event) -> None:
    """While this trial runs, remove worker groups' placement groups whose Train controller
    died without removing them (a trial Tune stopped or killed): they hold resources until
    the study ends, and this trial's own workers may be waiting for them."""
    from ray.util.placement_group import remove_placement_group

    from trainables.ray_layer.private import orphaned_placement_groups
    while True:
        for pg in orphaned_placement_groups():
            try:
                remove_placement_group(pg)
                print(f"released placement group {pg.id.hex()[:12]} of a stopped trial's "
                      "worker group", flush=True)
            except Exception:   # removed meanwhile (another trial's sweep)
                pass
        if stop.wait(SWEEP_EVERY_S):
            return


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
