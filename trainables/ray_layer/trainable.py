"""The Ray Tune function trainable: one trial = one TrialConfig run by the engine, in one process.

It resumes from ``ray.tune.get_checkpoint()`` when Tune restarts it (worker failure, study
resume) or from a newer checkpoint on the trial's storage, re-reports the epochs a restart
lost, reports every epoch with ``ray.tune.report`` through the checkpoint sink
(trainables.checkpoints.write_epoch) and feeds the dashboard's gauges. Which trainable runs a
trial is decided in trainables.ray_layer.dispatch, not here.
"""
from __future__ import annotations

import socket

from trainables.checkpoints import write_epoch
from trainables.config import TrialConfig
from trainables.cost import hold_of
from trainables.faults import maybe_inject_fault
from trainables.methods import flatten_trial
from trainables.ray_layer.dashboard import trial_gauges
from trainables.ray_layer.private import node_id
from trainables.ray_layer.storage import TrialStorage
from trainables.results import trial_static_fields


def trial_resources() -> dict:
    """The resources Tune gave this trial ({'CPU': 1.0, 'GPU': 0.25}); {} outside Tune."""
    from ray import tune
    try:
        return dict(tune.get_context().get_trial_resources().required_resources)
    except Exception:   # not in a Tune trial (a direct call)
        return {}


class TrialSetupError(RuntimeError):
    """A trial could not start (data missing on this node, bad device...): says where."""


def _build_trainer(cfg: TrialConfig):
    from trainables.engine import Trainer
    if cfg.decouple:   # the second stage of cRT / LWS, from the trial cfg.stage1 names
        from trainables.decoupled import DecoupledTrainer as Trainer
    try:
        return Trainer(cfg)              # seeds python/numpy/torch for THIS trial
    except (FileNotFoundError, ValueError, OSError) as e:
        raise TrialSetupError(f"trial could not start on node {socket.gethostname()}: "
                              f"{e}") from None


def train_trial(config: dict) -> None:
    """Tune entry point. ``config`` follows the search-space convention (base/method/axes)."""
    from ray import tune

    import ray

    from trainables.devices import refuse_unusable_gpus
    refuse_unusable_gpus(ray.get_gpu_ids())    # a GPU torch cannot use: say so, not train on CPU
    cfg = TrialConfig.from_dict(flatten_trial(config))
    if cfg.workers_per_trial > 1:   # the dispatcher gives those the Ray Train driver
        raise ValueError(f"workers_per_trial={cfg.workers_per_trial} reached the single-process "
                         "trainable: a data-parallel trial needs the Ray Train driver that "
                         "trainables.ray_layer.dispatch.trainable_for(resources, workers) "
                         "gives (elm-study run --workers-per-trial N, or resources: "
                         "{workers_per_trial: N})")
    trainer = _build_trainer(cfg)
    static = {**trial_static_fields(cfg), "node_id": node_id(),
              **getattr(trainer, "static_fields", {})}   # a decoupled trial's own label
    storage = TrialStorage()
    state, tune_epoch = storage.restore(tune.get_checkpoint())
    static["resumed_from_epoch"] = state["epoch"] if state else 0   # shows retries in rows
    trainer.meter.hold(*hold_of(trial_resources(), trainer.device))   # its share (cost.py)

    def emit(row: dict, folder) -> None:
        tune.report(row, checkpoint=tune.Checkpoint.from_directory(folder) if folder else None)

    if state is not None:
        trainer.load_state_dict(state)
    trainer.meter.credit(storage.earlier_cost())   # earlier attempts, retries included
    if state is not None:
        for h in storage.lost_epochs(state, tune_epoch):
            # the restored epoch's row carries a checkpoint, as the original did
            write_epoch(trainer, {**h, **static}, cfg, emit, force=h.get("epoch") == state["epoch"])
    gauges = trial_gauges(cfg, static["method"])   # the dashboard's per-trial metrics
    for m in trainer.epochs():
        if gauges is not None:
            gauges.update(m)
        write_epoch(trainer, {**m, **static}, cfg, emit)
        maybe_inject_fault(m["epoch"], tune.get_context().get_trial_id(), trainer)
