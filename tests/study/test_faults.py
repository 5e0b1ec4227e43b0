"""Faults on a real local Ray: a SIGKILLed worker, a corrupted checkpoint, a diverging trial,
a dataset missing on the worker, and resource requests the cluster cannot meet. The studies
that kill a worker or diverge join the session's shared cluster (tests/conftest.py), the fault
handed to their trials as the job's runtime_env."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from raycluster import job_env

from analysis.collect import load_curves, load_study, read_results, trial_dirs
from trainables.config import TrialConfig
from trainables.checkpoints import newest_good
from trainables.engine import Trainer

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[2]


ONE_TRIAL = """\
description: "one CE trial on synthetic data (fault tests: nothing else to wait for)"
base: {dataset: synthetic, ratio: 10, img_max: 40, epochs: 2, eval_every: 1, checkpoint_every: 1,
       batch_size: 32, eval_batch_size: 200, device: cpu}
methods: [ce]
grid:
  seed: [0]
"""


def one_trial(tmp_path) -> str:
    f = tmp_path / "one.yaml"
    f.write_text(ONE_TRIAL)
    return str(f)


def run(args, env, timeout=300):
    return subprocess.run([sys.executable, "-m", "study", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def _same_as_uninterrupted(study: Path, trial_id: str, final: dict) -> None:
    """The trial's config trained without interruption in-process ends with the same metrics."""
    import json
    from trainables.methods import flatten_trial
    params = next(d for d in trial_dirs(study) if read_results(d)[-1]["trial_id"] == trial_id)
    cfg = TrialConfig.from_dict(flatten_trial(json.loads((params / "params.json").read_text())))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)          # as the 1-CPU Ray trial: reductions depend on threads
    try:
        clean = Trainer(cfg).fit()
    finally:
        torch.set_num_threads(threads)
    assert final["test_top1"] == clean["test_top1"]
    assert final["train_loss"] == clean["train_loss"]


def test_sigkilled_worker_is_retried_and_ends_like_an_uninterrupted_run(tmp_path, shared_ray):
    marker = tmp_path / "killed"
    # SIGKILL right after epoch 2's report
    env = job_env(shared_ray, ELM_INJECT_FAULT=f"2:{marker}:kill")
    p = run(["run", one_trial(tmp_path), "--storage", str(tmp_path), "--name", "kill",
             "--set", "epochs=3", *shared_ray["args"]], env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    killed = marker.read_text().strip()
    rows = {read_results(d)[-1]["trial_id"]: read_results(d) for d in trial_dirs(tmp_path / "kill")}
    # Tune restores result.json from storage on restart; epoch 2's row must survive that
    assert killed in rows and [r["epoch"] for r in rows[killed]] == [1, 2, 3]
    _same_as_uninterrupted(tmp_path / "kill", killed, rows[killed][-1])


def test_worker_sigkilled_mid_epoch_resumes_from_its_last_checkpoint(tmp_path, shared_ray):
    marker = tmp_path / "killed"
    # SIGKILL inside epoch 4's training
    env = job_env(shared_ray, ELM_INJECT_FAULT=f"3:{marker}:kill-mid")
    p = run(["run", one_trial(tmp_path), "--storage", str(tmp_path), "--name", "mid",
             "--set", "epochs=5", "--set", "checkpoint_every=2", *shared_ray["args"]], env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    killed = marker.read_text().strip()
    study = tmp_path / "mid"
    rows = {read_results(d)[-1]["trial_id"]: read_results(d) for d in trial_dirs(study)}
    epochs = [r["epoch"] for r in rows[killed]]
    # restarted from the epoch-2 checkpoint, not from scratch: 1 and 2 are never retrained;
    # epoch 3's first row is there twice, or once when Tune's restore of result.json from
    # storage dropped the row reported after the last sync
    assert rows[killed][-1]["resumed_from_epoch"] == 2
    assert epochs.count(1) == 1 and epochs.count(2) == 1 and epochs.count(3) in (1, 2), epochs
    assert epochs[-2:] == [4, 5], epochs
    df = load_study(study)
    assert set(df["status"]) == {"terminated"} and (df["epochs_done"] == 5).all()
    curves = load_curves(study)
    kc = curves[(curves.trial_id == killed) & (curves.metric == "train_loss")]
    assert list(kc["epoch"]) == [1, 2, 3, 4, 5]          # analysis sees one row per epoch
    # ... and the row kept for epoch 3 is the retrained one, which the final model went through
    assert kc[kc.epoch == 3]["value"].item() == [r for r in rows[killed]
                                                 if r["epoch"] == 3][-1]["train_loss"]
    _same_as_uninterrupted(study, killed, rows[killed][-1])


def test_corrupted_checkpoint_falls_back_to_the_previous_good_one(tmp_path):
    cfg = TrialConfig(dataset="synthetic", ratio=10.0, epochs=2, batch_size=64, device="cpu")
    t = Trainer(cfg)
    paths = []
    for m in t.epochs():
        p = tmp_path / f"checkpoint_{m['epoch']:06d}" / "trial.pt"
        p.parent.mkdir()
        t.save(p)
        paths.append(p)
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) // 3])                     # truncated newest
    state = newest_good(paths)
    assert state["epoch"] == 1
    paths[0].write_bytes(b"garbage")
    assert newest_good(paths) is None                          # -> start from scratch


def test_diverging_trial_ends_diverged_and_the_study_goes_on(tmp_path, shared_ray):
    p = run(["run", "smoke", "--storage", str(tmp_path), "--name", "div", "--seeds", "0",
             "--set", "lr=1e12", "--set", "warmup_epochs=0", *shared_ray["args"]],
            shared_ray["env"])
    df = load_study(tmp_path / "div")
    assert len(df) == 2 and "diverged" in set(df["status"]), p.stdout[-2000:]
    assert not (df["status"] == "errored").any()


def test_missing_dataset_on_a_worker_fails_the_trial_with_path_and_node(tmp_path):
    """A local study refuses missing data before Ray starts (tests/study/test_cli.py); on a
    cluster the driver cannot see the workers' disks, so the trial itself must say which node
    lacked which files (the trainable, as Tune calls it on the worker)."""
    import socket

    from trainables.ray_layer.trainable import TrialSetupError, train_trial
    with pytest.raises(TrialSetupError) as e:
        train_trial({"base": {"dataset": "cifar10", "data_root": str(tmp_path / "nowhere"),
                              "device": "cpu"}})
    text = str(e.value)
    assert f"could not start on node {socket.gethostname()}" in text
    assert str(tmp_path / "nowhere") in text and "cifar-10-batches-py" in text


def test_more_gpus_per_trial_than_the_cluster_has_exits_2_and_creates_nothing(tmp_path, env):
    p = run(["run", "smoke", "--storage", str(tmp_path), "--name", "gpu",
             "--gpus-per-trial", "1"], env)
    assert p.returncode == 2
    assert "--gpus-per-trial 1 but this machine has 0 GPU(s)" in p.stderr
    assert not (tmp_path / "gpu").exists()
