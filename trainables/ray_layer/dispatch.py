"""THE dispatcher: which trainable runs a trial, from the resources it was given.

Nothing else in the project chooses a trainable: the study launcher (new runs, extensions
and ``Tuner.restore``) and the tests call :func:`trainable_for`.
"""
from __future__ import annotations


def trainable_for(resources: dict, workers: int = 1, *, quiet: bool = True, pack: int = 1,
                  member_dirname=None):
    """(trainable, max_concurrent cap or None) for a Tuner.

    workers == 1: the single-process trainable as the trial actor named after its trial
    (dashboard.trial_actor; ``quiet`` lowers Ray Train/Tune's INFO chatter in it), holding
    ``resources`` ({"cpu", "gpu"}). workers > 1: the Ray Train driver, which itself holds only
    DRIVER_CPUS; Ray Train reserves the N workers (one GPU each where the cluster has GPUs,
    ``cpu`` CPUs each) as one placement group, and the cap keeps Tune from starting drivers
    whose workers cannot be placed. ``pack`` > 1: the pack trainable (K trials of the grid
    as one Tune trial, one process holding ``resources``; its Tune configs come from
    study.packs), named like a trial actor; ``member_dirname(config, member trial id)``
    names its members' trial folders (the study's convention)."""
    from ray import tune
    if workers < 1:
        raise ValueError(f"workers_per_trial={workers} is out of range: must be >= 1")
    if pack < 1:
        raise ValueError(f"pack={pack} is out of range: must be >= 1")
    if pack > 1:
        if workers > 1:
            raise ValueError(f"pack={pack} with workers_per_trial={workers}: a pack is one "
                             "process; choose one")
        from trainables.ray_layer.dashboard import trial_actor
        from trainables.ray_layer.pack_trainable import pack_entry
        return tune.with_resources(trial_actor(pack_entry(member_dirname), quiet=quiet),
                                   resources), None
    if workers == 1:
        from trainables.ray_layer.dashboard import trial_actor
        from trainables.ray_layer.trainable import train_trial
        return tune.with_resources(trial_actor(train_trial, quiet=quiet), resources), None
    from trainables.ray_layer.train_driver import (DRIVER_CPUS, max_trials_that_fit,
                                                   train_trial_distributed)
    driver = tune.with_parameters(train_trial_distributed, workers=workers,
                                  worker_cpus=float(resources.get("cpu", 1.0)))
    return (tune.with_resources(driver, {"cpu": DRIVER_CPUS}),
            max_trials_that_fit(resources, workers))
