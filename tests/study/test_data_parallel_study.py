"""Data-parallel studies at this machine's real size (2 CPUs, never a faked count; issue 22).

- Two 2-worker trials at 0.5 CPU per worker (1.25 CPUs a trial with the Train driver's 0.25:
  one at a time here) both finish. Before the fix the first trial's ``done`` row made Tune kill
  its driver with the Train controller inside, the worker group's placement group outlived
  them (its lifetime is the job's), and the second trial's worker group timed out every 60 s,
  retried forever (trainables/ray_layer/train_driver.py's docstring).
- A worker group that can never be placed fails its trial after a bounded wait: Ray Train's
  start timeout (RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S, 2 s here) retried
  ELM_TRAIN_START_RETRIES times, then Tune's retries (max_failures=1), then ``errored`` with a
  line naming the request and what the cluster had free. The CLI refuses such a study before
  Ray starts (study.placement), so the Ray layer is driven directly: 2 workers of 1 CPU plus
  the driver's 0.25 cannot fit in 2 CPUs.
- A study waiting for resources for over a minute says so in its progress line, with Ray's
  unplaced requests and the free resources (no Ray: the two lookups are stubbed).
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis.collect import load_study

ray_and_slow = [pytest.mark.ray, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.ray
@pytest.mark.slow
def test_two_data_parallel_trials_both_finish_on_two_cpus(tmp_path, shared_ray):
    """On the session's shared 2-CPU cluster: a placement group this leaked would starve
    every later study there too."""
    t0 = time.time()
    p = subprocess.run([sys.executable, "-m", "study", "run", "smoke", "--storage",
                        str(tmp_path), "--name", "dp", "--seeds", "0", "--set", "epochs=1",
                        "--workers-per-trial", "2", "--cpus-per-trial", "0.5",
                        "--max-failures", "0", *shared_ray["args"]],
                       env=shared_ray["env"], cwd=REPO, capture_output=True, text=True,
                       timeout=480)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    df = load_study(tmp_path / "dp")
    assert len(df) == 2 and set(df["status"]) == {"terminated"}, df[["status"]]
    # its cost: both workers' holdings (2 × 0.5 CPU) for its wall time, in CPU-seconds
    assert set(df["cost_kind"]) == {"cpu"} and (df["cost_gpu_s"].fillna(0) == 0).all()
    assert ((df["cost_cpu_s"] - df["cost_wall_s"]).abs() < 1e-6 * df["cost_wall_s"]).all()
    assert (df["cost_wall_s"] > 0).all(), df[["cost_wall_s", "cost_cpu_s"]]
    # each worker group started once: no start timeout (Ray Train's, or ours after its
    # retries), no retry. Not any "timed out": Ray's controller logs a transient "Get timed
    # out" for its autoscaling request on a busy machine, which it says is safe to ignore.
    for said in ("WorkerGroupStartupTimeoutError", "worker group startup timed out",
                 "could not be placed", "retry  "):
        assert said not in out, out[-4000:]
    print(f"two 2-worker trials: {time.time() - t0:.0f} s")


UNPLACEABLE = r'''
import json, sys, time
import ray
from ray import tune
from trainables.ray_layer.dispatch import trainable_for
ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False,
         object_store_memory=100 * 1024**2)
trainable, cap = trainable_for({"cpu": 1.0, "gpu": 0}, 2)
base = dict(dataset="synthetic", ratio=10.0, batch_size=64, eval_batch_size=100, epochs=1,
            device="cpu", loss="ce", workers_per_trial=2)
t0 = time.time()
grid = tune.Tuner(trainable, param_space={"base": base},
                  tune_config=tune.TuneConfig(max_concurrent_trials=max(cap, 1)),
                  run_config=tune.RunConfig(name="unplaceable", storage_path=sys.argv[1],
                                            failure_config=tune.FailureConfig(max_failures=1))
                  ).fit()
json.dump({"cap": cap, "seconds": time.time() - t0, "errors": [str(e) for e in grid.errors],
           "error_file": open(grid[0].path + "/error.txt").read()}, open(sys.argv[2], "w"))
'''


@pytest.mark.ray
@pytest.mark.slow
def test_a_worker_group_that_cannot_start_errors_the_trial_after_a_bounded_wait(tmp_path, env):
    out = tmp_path / "out.json"
    env.update(RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S="2", ELM_TRAIN_START_RETRIES="1")
    p = subprocess.run([sys.executable, "-c", UNPLACEABLE, str(tmp_path / "s"), str(out)],
                       env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    got = json.loads(out.read_text())
    assert got["cap"] == 0 and len(got["errors"]) == 1, got
    last = got["error_file"].strip().splitlines()[-1]
    assert "WorkerGroupStartError" in last and "2-worker group" in last, last
    assert "2 tries of 2 s timed out" in last and "free of" in last, last
    # retried once by Tune (max_failures=1), then errored: two failures in error.txt
    assert "Failure # 2" in got["error_file"] and "Failure # 3" not in got["error_file"]
    # two Tune attempts of two 2-s tries each, plus the start-up of two drivers and
    # controllers on 2 busy cores: bounded, never the minutes of Ray's defaults
    assert got["seconds"] < 150, got["seconds"]
    print(f"errored after {got['seconds']:.0f} s: {last}")


ORPHAN = r'''
import json, sys, time
import ray
from ray.util.placement_group import placement_group
from trainables.ray_layer.private import orphaned_placement_groups
ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False,
         object_store_memory=100 * 1024**2)

@ray.remote(num_cpus=0)
class Controller:   # what a Train controller does: create a group, then die with its trial
    def make(self):
        pg = placement_group([{"CPU": 0.5}])
        ray.get(pg.ready())
        return pg.id.hex()

mine = placement_group([{"CPU": 0.25}])          # the driver's (Tune's own trial groups)
ray.get(mine.ready())
alive, doomed = Controller.remote(), Controller.remote()
kept, leaked = ray.get(alive.make.remote()), ray.get(doomed.make.remote())
before = [pg.id.hex() for pg in orphaned_placement_groups()]
ray.kill(doomed)
deadline = time.time() + 30
while time.time() < deadline:
    after = [pg.id.hex() for pg in orphaned_placement_groups()]
    if after:
        break
    time.sleep(0.5)
json.dump({"before": before, "after": after, "leaked": leaked, "kept": kept,
           "mine": mine.id.hex()}, open(sys.argv[1], "w"))
'''


@pytest.mark.ray
@pytest.mark.slow
def test_only_groups_of_dead_creator_actors_count_as_orphaned(tmp_path, env):
    """The sweep's selection: a group whose creating actor died, never the driver's own
    (Tune's trial groups) nor one whose creator lives (a running trial's workers)."""
    out = tmp_path / "out.json"
    p = subprocess.run([sys.executable, "-c", ORPHAN, str(out)], env=env, cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    got = json.loads(out.read_text())
    assert got["before"] == [] and got["after"] == [got["leaked"]], got


STOPPED = r'''
import json, sys
import ray
from ray import tune
from trainables.ray_layer.dispatch import trainable_for
ray.init(address=sys.argv[3])        # the session's shared 2-CPU cluster
trainable, cap = trainable_for({"cpu": 0.5, "gpu": 0}, 2)
base = dict(dataset="synthetic", ratio=10.0, batch_size=64, eval_batch_size=100, epochs=3,
            device="cpu", loss="ce", workers_per_trial=2)
grid = tune.Tuner(trainable, param_space={"base": {**base, "seed": tune.grid_search([0, 1])}},
                  tune_config=tune.TuneConfig(max_concurrent_trials=cap),
                  run_config=tune.RunConfig(name="stopped", storage_path=sys.argv[1],
                                            stop={"training_iteration": 1},
                                            failure_config=tune.FailureConfig(max_failures=0))
                  ).fit()
json.dump({"cap": cap, "epochs": [r.metrics.get("epoch") for r in grid],
           "errors": [str(e) for e in grid.errors]}, open(sys.argv[2], "w"))
'''


@pytest.mark.ray
@pytest.mark.slow
def test_a_trial_tune_stops_midway_does_not_keep_its_workers_resources(tmp_path,
                                                                        shared_ray):
    """Tune stopping a data-parallel trial (a stop criterion here; ASHA's STOP alike) kills its
    driver and the Train controller with it: the next trial's driver removes the worker
    group's placement group the controller left, and that trial runs. On the session's
    shared cluster: a group left behind would also starve every later study there."""
    out = tmp_path / "out.json"
    p = subprocess.run([sys.executable, "-c", STOPPED, str(tmp_path / "s"), str(out),
                        shared_ray["address"]],
                       env=shared_ray["env"], cwd=REPO, capture_output=True, text=True,
                       timeout=400)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    got = json.loads(out.read_text())
    assert got == {"cap": 1, "epochs": [1, 1], "errors": []}, got
    assert "of a stopped trial's worker group" in p.stdout + p.stderr


class _Trial:
    def __init__(self, status):
        self.status, self.trial_id, self.last_result = status, "t", {}
        self.config = {"base": {"epochs": 2}}


@pytest.mark.parametrize("statuses, workers, what", [
    (["PENDING", "PENDING"], 1, "all 2 trial(s) pending for"),
    (["TERMINATED", "RUNNING"], 2, "waiting for resources for"),   # a driver's workers wait
])
def test_a_study_waiting_over_a_minute_says_so_with_rays_numbers(monkeypatch, statuses, workers,
                                                                  what):
    import study.progress_callback as pc
    monkeypatch.setattr(pc, "_unplaced_requests", lambda: [({"CPU": 1.0}, "NO_RESOURCES")])
    monkeypatch.setattr(pc, "_free_and_total", lambda: ({"CPU": 0.75}, {"CPU": 2.0}))
    from trainables.store import RunOptions, StudyRecord
    cb = pc.StudyProgress(StudyRecord("s", options=RunOptions(workers_per_trial=workers)), "/x",
                          run_trials=2)
    trials = [_Trial(s) for s in statuses]
    assert "pending for" not in cb.study_line(trials)       # first seen: not yet a minute
    cb.waiting_since -= 61
    line = cb.study_line(trials)
    assert what in line and "1 request(s) of 1 CPU (NO_RESOURCES)" in line, line
    assert "free 0.75 CPU of 2 CPU" in line, line
    monkeypatch.setattr(pc, "_unplaced_requests", lambda: [])
    assert "for resources" not in cb.study_line([_Trial("RUNNING"), _Trial("RUNNING")])
    assert cb.waiting_since is None                          # the wait is over: reset
