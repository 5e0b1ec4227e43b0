"""Packed studies on a real local Ray, through the CLI (issue 21; docs/packing.md).

Three CLI study runs shared by the module (each costs tens of seconds on 2 cores): the same
4-trial grid packed (``--pack 2``: two packs of 2, one of them SIGKILLed after epoch 1 of 2
and retried), unpacked, and the packed study grown by a seed with ``--into`` (one more pack
of 2); and a packed study whose driver is SIGKILLed, finished by ``resume``. Grouping, sizes
and split fields: tests/study/test_pack_plan.py."""
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from analysis.collect import load_study
from raycluster import job_env, sigkill_driver_when
from trainables.store import read_results, study_trials, trial_dirs

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[2]
# smoke's grid (CE and ELM + DRW, seeds 0 and 1), made small: 20 images per class at most and
# one evaluation (a pack's fused evaluation is the slow part on a CPU)
GRID = ("smoke", "--seeds", "0,1", "--set", "img_max=20", "--set", "eval_every=2")


# The studies join the session's shared 2-CPU cluster, ``shared_ray`` (a local start is
# tested by test_loopback, test_watch_ray and the data-parallel tests).
def cli(cluster, *args, timeout=400, fault=None):
    env = job_env(cluster, ELM_INJECT_FAULT=fault) if fault else cluster["env"]
    # status reads a folder: it takes no --address
    where = cluster["args"] if args[0] in ("run", "resume") else []
    p = subprocess.run([sys.executable, "-m", "study", *map(str, args), *where], env=env,
                       cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p.stdout


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    return tmp_path_factory.mktemp("packs")


@pytest.fixture(scope="module")
def packed(storage, shared_ray):
    """The grid packed in two packs of 2, one of them SIGKILLed after epoch 1's report (the
    first pack to get there) and retried by Tune: (study folder, killed pack's id, output)."""
    marker = storage / "killed-pack"
    out = cli(shared_ray, "run", *GRID, "--pack", "2", "--storage", storage, "--name", "packed",
              fault=f"1:{marker}:kill")
    return storage / "packed", marker.read_text().strip(), out


@pytest.fixture(scope="module")
def unpacked(storage, shared_ray):
    cli(shared_ray, "run", *GRID, "--storage", storage, "--name", "unpacked")
    return storage / "unpacked"


def by_key(study):
    return {t.trial_key: t for t in study_trials(study)}


def test_a_packed_study_reads_as_the_same_study_unpacked(packed, unpacked, shared_ray):
    study, _, out = packed
    assert "4 trials as 2 packs" in out and "does not speed up a CPU" in out, out
    mine, theirs = by_key(study), by_key(unpacked)
    assert set(mine) == set(theirs) and len(mine) == 4
    for key, t in mine.items():
        assert t.status == theirs[key].status == "terminated"
        assert [r["epoch"] for r in t.epochs] == [r["epoch"] for r in theirs[key].epochs] \
            == [1, 2]
        assert [r["epoch"] for r in t.rows] == [1, 2], t.rows       # whole, once each
    # the members' folders are ordinary trial folders beside the packs' own
    folders = sorted(p.name for p in study.iterdir() if p.is_dir())
    assert sum(n.startswith("pack2_") for n in folders) == 2, folders
    assert len(trial_dirs(study)) == 4 and all("_m" in d.name for d in trial_dirs(study))
    for d in trial_dirs(study):
        assert set(json.loads((d / "params.json").read_text())) == {"base", "method"}
        assert len(list(d.glob("checkpoint_*/trial.pt"))) == 2        # the newest two
        assert list(d.glob("events.out.tfevents.*")), f"no TensorBoard run in {d.name}"
        row = read_results(d)[-1]
        assert row["trial_id"].startswith(row["pack_trial_id"] + "_m") and row["pack_size"] == 2
    # status and analysis read it unchanged
    df = load_study(study)
    assert len(df) == 4 and set(df["status"]) == {"terminated"} and (df["epochs_done"] == 2).all()
    assert sorted(df["trial_key"]) == sorted(load_study(unpacked)["trial_key"])
    status = cli(shared_ray, "status", study)
    assert "4/4 trials seen; terminated 4" in status, status
    assert "done   CE synthetic LT ρ=10 seed 0" in out            # progress lines per member
    assert "study packed: 4 done · 0 running · 0 pending · 0 failed · epochs 8/8" in out, out


def test_a_sigkilled_pack_is_retried_from_its_checkpoint_and_ends_as_uninterrupted(packed):
    """The killed pack's members resume from their epoch-1 checkpoints and end with exactly
    the numbers of the same pack trained without interruption (here, in this process, on one
    thread as the 1-CPU Ray trial: reductions depend on the thread count)."""
    import torch

    from trainables.config import TrialConfig
    from trainables.jsonio import finite_or_none
    from trainables.methods import flatten_trial
    from trainables.pack import PackTrainer
    study, pack_id, out = packed
    assert "retry  pack of 2" in out and pack_id in out, out
    hit = sorted((t for t in study_trials(study) if t.rows[-1]["pack_trial_id"] == pack_id),
                 key=lambda t: t.trial_id)
    assert len(hit) == 2, f"members of the killed pack {pack_id}: {hit}"
    assert all(t.rows[-1]["resumed_from_epoch"] == 1 for t in hit)
    cfgs = [TrialConfig.from_dict(flatten_trial(json.loads(
        (t.trial_dir / "params.json").read_text()))) for t in hit]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        clean = [[m for m in rows] for rows in PackTrainer(cfgs).epochs()]
    finally:
        torch.set_num_threads(threads)
    for k, t in enumerate(hit):
        for epoch, row in enumerate(t.epochs):
            for metric in ("train_loss", "train_top1", "test_top1", "best_test_top1"):
                want = finite_or_none(clean[epoch][k]).get(metric)    # as result.json has it
                assert row.get(metric) == want, (t.trial_id, epoch, metric)


def test_members_share_their_packs_cpu_and_the_killed_packs_cost_both_attempts(packed):
    """A pack of 2 holding 1 CPU: each member counts half a CPU (trainables/cost.py); the
    members of the pack SIGKILLed after epoch 1 count both attempts."""
    study, pack_id, _ = packed
    for t in study_trials(study):
        last = t.rows[-1]
        assert {(r["cost_kind"], r["cost_share"]) for r in t.rows} == {("cpu", 0.5)}
        assert last["cost_cpu_s"] == pytest.approx(0.5 * last["cost_wall_s"])
        killed = last["pack_trial_id"] == pack_id
        assert last["cost_attempts"] == (2 if killed else 1), (killed, t.rows)
        assert last["cost_wall_s"] > t.rows[0]["cost_wall_s"]


def test_into_a_packed_study_runs_only_the_new_trials(packed, shared_ray):
    study, _, _ = packed
    before = {d: (d / "result.json").read_bytes() for d in trial_dirs(study)}
    out = cli(shared_ray, "run", *GRID[:2], "0..2", *GRID[3:], "--into", study)
    assert "4 finished there already (kept), 0 unfinished in earlier runs; adding 2 as run 2" \
        in out, out
    assert "2 trials as 1 pack (one Tune trial each)" in out, out
    assert {d: (d / "result.json").read_bytes() for d in before} == before     # untouched
    df = load_study(study)
    assert len(df) == 6 and Counter(df["run"]) == {1: 4, 2: 2}
    assert sorted(df.loc[df["run"] == 2, "seed"]) == [2, 2]
    assert set(df["status"]) == {"terminated"}
    meta = json.loads((study / "study.json").read_text())
    assert [(r["run"], r["launched"], r["pack"]) for r in meta["runs"]] == [(1, 4, 2), (2, 2, 2)]


def test_a_packed_study_whose_driver_was_killed_is_finished_by_resume(storage, shared_ray):
    """One pack of 2 (seed 0's CE and ELM + DRW), 3 epochs, its driver SIGKILLed once both
    members reported and before they finished: `resume` ends every member with epochs 1..3
    exactly once in result.json, continued from a checkpoint, not trained again from scratch."""
    study = storage / "killed"
    args = ("run", *GRID[:2], "0", *GRID[3:], "--set", "epochs=3", "--pack", "2", "--storage", storage, "--name", "killed", *shared_ray["args"])

    def both_reported_neither_finished():
        seen = {d.name: len(read_results(d)) for d in trial_dirs(study)} \
            if study.exists() else {}
        return seen if len(seen) == 2 and 1 <= min(seen.values()) and max(seen.values()) < 3 \
            else None

    seen = sigkill_driver_when([sys.executable, "-m", "study", *map(str, args)],
                               shared_ray["env"], REPO, both_reported_neither_finished) or {}
    assert len(seen) == 2 and 1 <= min(seen.values()) and max(seen.values()) < 3, seen
    out = cli(shared_ray, "resume", study)
    trials = study_trials(study)
    assert len(trials) == 2 and {t.status for t in trials} == {"terminated"}, out
    for t in trials:
        assert [r["epoch"] for r in t.rows] == [1, 2, 3], (t.trial_id, t.rows)
        assert t.rows[-1]["resumed_from_epoch"] >= 1, t.rows[-1]      # not from scratch
