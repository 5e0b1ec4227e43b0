"""Placement checked before Ray waits: a local study whose one trial needs more than this
machine has exits 2 at once, with the numbers, before Ray starts (a dry run too); on a
cluster the same numbers are one warning line. Nothing faked: this machine's real CPU count
(2 on the project's machines) decides which requests cannot fit."""
import os
import re
import time

import pytest
import torch

from study.cli import main
from study.launcher import concurrency_limit
from study.options import RunOptions
from study.placement import check_placement
from trainables.ray_layer.train_driver import DRIVER_CPUS

CPUS, GPUS = os.cpu_count(), torch.cuda.device_count()
N = max(CPUS, 2)        # N workers of 1 CPU + the driver's share: one more than there is
CASES = [
    (["--workers-per-trial", N, "--set", f"batch_size={16 * N}"],
     rf"^elm-study: error: one trial needs {N + DRIVER_CPUS:g} CPUs \(--workers-per-trial {N} "
     rf"× --cpus-per-trial 1 \+ {DRIVER_CPUS:g} for the Train driver\) but this machine has "
     rf"{CPUS} CPU\(s\): no trial could ever start \(lower --cpus-per-trial or "
     r"--workers-per-trial\)$"),
    (["--cpus-per-trial", CPUS + 1],
     rf"one trial needs {CPUS + 1} CPUs \(--cpus-per-trial {CPUS + 1}\) but this machine has "
     rf"{CPUS} CPU\(s\)"),
    (["--gpus-per-trial", GPUS + 1],
     rf"^elm-study: error: --gpus-per-trial {GPUS + 1} but this machine has {GPUS} GPU\(s\)$"),
]


@pytest.mark.parametrize("flags, match", CASES, ids=["workers", "cpus", "gpus"])
def test_a_trial_this_machine_cannot_place_exits_2_before_ray(capsys, tmp_path, flags, match):
    import ray
    store = tmp_path / "store"
    t0 = time.perf_counter()
    rc = main(["run", "smoke", "--storage", str(store), *map(str, flags)])
    took = time.perf_counter() - t0
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, err
    assert re.search(match, lines[0]), lines[0]
    assert "Traceback" not in err
    assert not ray.is_initialized(), "refused before Ray starts"
    assert took < 5, f"took {took:.1f} s"
    assert not store.exists()


@pytest.mark.parametrize("flags, match", CASES, ids=["workers", "cpus", "gpus"])
def test_a_dry_run_says_what_would_not_fit_here(capsys, tmp_path, flags, match):
    """A dry run may plan for another machine (a GPU study on a laptop): it prints the plan
    and one line saying what does not fit here, and exits 0, as it does for missing data."""
    store = tmp_path / "store"
    rc = main(["run", "smoke", "--storage", str(store), "--dry-run", *map(str, flags)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    line = [x for x in out.out.splitlines() if x.startswith("cannot place here: ")]
    assert len(line) == 1, out.out
    assert re.search(match.replace("^elm-study: error: ", "^"), line[0][19:]), line[0]
    assert not store.exists()


def test_what_fits_this_machine_goes_on(capsys, tmp_path):
    """2 workers × 0.5 CPU + the driver's 0.25 fit 2 CPUs: the dry run plans it."""
    rc = main(["run", "smoke", "--storage", str(tmp_path / "s"), "--dry-run",
               "--workers-per-trial", "2", "--cpus-per-trial", str((CPUS - DRIVER_CPUS) / 2)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "holds 1 such trial(s) at once" in out.out


def test_on_a_cluster_the_same_numbers_are_one_warning_line():
    """A cluster may grow (an autoscaler): a warning, not a refusal. (A cluster's resources
    here are a dict: what ray.cluster_resources() returned.)"""
    options = RunOptions(workers_per_trial=2)
    line = check_placement(options, {"CPU": 2.0}, local=False)
    assert line == ("WARNING: one trial needs 2.25 CPUs (--workers-per-trial 2 × "
                    "--cpus-per-trial 1 + 0.25 for the Train driver) but the cluster has 2 "
                    "CPU(s): no trial could ever start now; its trials wait until the cluster "
                    "grows (an autoscaler) or forever")
    assert check_placement(options, {"CPU": 2.25}, local=False) is None
    assert check_placement(options, {"CPU": 2.25}, local=True) is None
    gpu = check_placement(RunOptions(workers_per_trial=4), {"CPU": 64, "GPU": 2}, local=False)
    assert "takes one GPU per worker, 4 GPUs per trial, but the cluster has 2 GPU(s)" in gpu


@pytest.mark.parametrize("given, cap, limit", [(None, None, None), (None, 0, 1), (3, 0, 1),
                                               (None, 2, 2), (4, 2, 2), (1, None, 1)])
def test_a_cap_of_zero_is_never_no_cap(given, cap, limit):
    assert concurrency_limit(given, cap) == limit
