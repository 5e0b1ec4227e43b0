"""Can one trial be placed? What a trial needs (CPUs, GPUs; N Ray Train workers plus their
driver's share) against what the machine or cluster has, checked before Ray waits on it.

A local study that cannot place even one trial would start Ray and pend forever: it is refused
(exit 2, one line with the numbers), before Ray starts where the machine's own counts
(``os.cpu_count()``, ``torch.cuda.device_count()``) tell, and again with Ray's counts once it
has started. A cluster may grow (an autoscaler adds nodes for pending work), so there the same
numbers are one warning line and the study goes on. No Ray here.
"""
from __future__ import annotations

import os

from study.options import RunOptions
from study.store import StudyError

DEFAULT_GPU_FRACTION = 0.25   # four small ResNet32 trials per GPU (see bench/packing.py)


def driver_cpus() -> float:
    """The Train driver's CPU share (one per data-parallel trial), from the Ray layer."""
    from trainables.ray_layer.train_driver import DRIVER_CPUS
    return DRIVER_CPUS


def trial_resources(options: RunOptions, have: dict) -> dict:
    """{"cpu", "gpu"} one trial (or, with N workers, each of its workers) is given: the
    options' values, ``gpus_per_trial`` None meaning a quarter GPU where there are GPUs and one
    whole GPU per worker for data-parallel trials."""
    gpus = have.get("GPU", 0)
    gpu = options.gpus_per_trial
    if gpu is None:
        gpu = DEFAULT_GPU_FRACTION if gpus else 0
    if options.workers_per_trial > 1:
        gpu = 1 if gpus else 0
    return {"cpu": options.cpus_per_trial, "gpu": gpu}


def asks_line(options: RunOptions) -> str:
    """What each trial will ask of a cluster, for a dry run (planning for GPUs elsewhere)."""
    gpu = options.gpus_per_trial
    if options.workers_per_trial > 1:
        each = (f"{options.workers_per_trial} workers × ({options.cpus_per_trial:g} CPU + "
                f"{1 if gpu is None else gpu:g} GPU where the cluster has GPUs) + "
                f"{driver_cpus():g} CPU for the Train driver")
    else:
        each = f"{options.cpus_per_trial:g} CPU + " + (
            f"{DEFAULT_GPU_FRACTION:g} GPU where the cluster has GPUs (none where it has none)"
            if gpu is None else f"{gpu:g} GPU")
    pack = f" (a pack of up to {options.pack} trials asks as one)" if options.pack > 1 else ""
    return f"# each trial asks the cluster for {each}{pack}"


def trial_needs(options: RunOptions, have: dict) -> tuple[float, float, str]:
    """(CPUs, GPUs, how the CPUs add up) that one whole trial holds at once."""
    res, n = trial_resources(options, have), options.workers_per_trial
    if n == 1:
        return res["cpu"], res["gpu"], f"--cpus-per-trial {res['cpu']:g}"
    drv = driver_cpus()
    return (n * res["cpu"] + drv, n * res["gpu"],
            f"--workers-per-trial {n} × --cpus-per-trial {res['cpu']:g} + {drv:g} for the "
            "Train driver")


def unplaceable(options: RunOptions, have: dict, where: str) -> str | None:
    """None if one trial fits in ``have`` ({"CPU", "GPU"}), else the line that says why."""
    cpus, gpus, how = trial_needs(options, have)
    cpu_have, gpu_have = have.get("CPU", 0), have.get("GPU", 0)
    if options.gpus_per_trial is not None and options.workers_per_trial == 1 \
            and gpus > gpu_have:
        return f"--gpus-per-trial {gpus:g} but {where} has {gpu_have:g} GPU(s)"
    if gpus > gpu_have:
        return (f"--workers-per-trial {options.workers_per_trial} takes one GPU per worker, "
                f"{gpus:g} GPUs per trial, but {where} has {gpu_have:g} GPU(s)")
    if cpus > cpu_have + 1e-9:
        return (f"one trial needs {cpus:g} CPUs ({how}) but {where} has {cpu_have:g} "
                f"CPU(s): no trial could ever start")
    return None


def check_placement(options: RunOptions, have: dict, *, local: bool,
                    where: str | None = None) -> str | None:
    """Refuse (StudyError) a local study whose trial cannot be placed; for a cluster return
    the warning line to print (None when it fits)."""
    line = unplaceable(options, have, where or ("this machine" if local else "the cluster"))
    if line is None:
        return None
    if local:
        hint = "" if "CPU(s)" not in line else (
            " (lower --cpus-per-trial or --workers-per-trial)" if options.workers_per_trial > 1
            else " (lower --cpus-per-trial)")
        raise StudyError(line + hint)
    return (f"WARNING: {line} now; its trials wait until the cluster grows (an autoscaler) "
            "or forever")


def this_machine() -> dict:
    """What a local Ray started here will have: this machine's CPUs and visible GPUs."""
    import torch
    return {"CPU": os.cpu_count() or 1, "GPU": torch.cuda.device_count()}


def fits_here(options: RunOptions) -> str:
    """For data-parallel trials (the dry run's line): what one trial takes, and how many fit
    on this machine (a cluster's count is printed when the study starts and Ray knows it)."""
    from trainables.ray_layer.train_driver import max_trials_that_fit
    here, n = this_machine(), options.workers_per_trial
    fits = max_trials_that_fit({"cpu": options.cpus_per_trial, "gpu": 1 if here["GPU"] else 0},
                               n, here)
    return (f"# each trial: {n} Ray Train workers ({n} GPU(s) where the cluster has GPUs, "
            f"{options.cpus_per_trial:g} CPU each); this machine ({here['CPU']} CPUs, "
            f"{here['GPU']} GPUs) holds {fits} such trial(s) at once")
