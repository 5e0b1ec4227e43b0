"""Growing a study on a real local Ray: more seeds, another method, a changed field; each run
launches only the trials whose key the study lacks, finished trials stay byte-identical, and a
killed extension is finished by `resume` with every key finished exactly once."""
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from raycluster import sigkill_driver_when

from analysis.aggregate import aggregate
from analysis.collect import load_study
from trainables.store import FINISHED, read_results, study_trials, trial_dirs

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[2]
GROWN = """\
description: smoke grown by one method
base: {dataset: synthetic, ratio: 10, img_max: 40, epochs: 1, eval_every: 1, checkpoint_every: 1,
       batch_size: 32, eval_batch_size: 200, device: cpu}
methods: [ce, elm+drw(lam=0.5), ldam+drw]
grid:
  seed: 0..2
"""


def cli(env, *args, timeout=300):
    p = subprocess.run([sys.executable, "-m", "study", *map(str, args)], env=env, cwd=REPO,
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p.stdout


def snapshot(study):
    return {d: (d / "result.json").read_bytes() for d in trial_dirs(study)}


def test_a_study_grows_by_seeds_and_methods_and_reruns_changed_configs(tmp_path, shared_ray):
    # every run joins the session's cluster (its own local Ray start is what the other
    # study tests show); the killed run 4 takes its driver down, never the cluster
    env, on = shared_ray["env"], shared_ray["args"]
    study = tmp_path / "grow"
    out = cli(env, "run", "smoke", "--seeds", "0,1", "--epochs", "1", "--name", "grow",
              "--storage", tmp_path, *on)
    first = snapshot(study)
    assert len(first) == 4
    df = load_study(study)                       # a tiny study runs to completion
    assert set(df["status"]) == {"terminated"} and sorted(df["seed"]) == [0, 0, 1, 1]
    assert set(df["method"]) == {"CE", "ELM + DRW (λ=0.5)"}
    assert df["final_top1"].between(0, 100).all() and (df["epochs_done"] == 1).all()
    assert "final-epoch test top-1" in out and "results:" in out, out

    out = cli(env, "run", "smoke", "--seeds", "0..2", "--epochs", "1", "--into", study, *on)
    assert "4 finished there already (kept), 0 unfinished in earlier runs; adding 2 as run 2" \
        in out, out
    assert {d: b for d, b in snapshot(study).items() if d in first} == first   # untouched
    df = load_study(study)
    assert len(df) == 6 and Counter(df["run"]) == {1: 4, 2: 2}
    assert sorted(df.loc[df["run"] == 2, "seed"]) == [2, 2]

    grown = tmp_path / "grown.yaml"
    grown.write_text(GROWN)
    out = cli(env, "run", grown, "--into", "grow", "--storage", tmp_path, *on)
    assert "6 finished there already (kept), 0 unfinished in earlier runs; adding 3 as run 3" \
        in out, out
    df = load_study(study)
    assert set(df.loc[df["run"] == 3, "method"]) == {"LDAM + DRW"} and len(df) == 9
    agg = aggregate(df, "final_top1")
    assert set(agg["n"]) == {3} and len(agg) == 3, agg      # 3 seeds per method
    meta = json.loads((study / "study.json").read_text())
    assert [(r["run"], r["launched"], r["kept"]) for r in meta["runs"]] == [
        (1, 4, 0), (2, 2, 4), (3, 3, 6)]
    assert (study / "study-run-3.yaml").read_text().count("ldam+drw") == 1
    status = cli(env, "status", study)
    assert "run 3" in status and "added 3, 6 kept" in status, status
    before = snapshot(study)

    # a changed epochs makes new keys: every trial again, in run 4; killed once a trial has
    # reported its first epoch of two (so it is mid-way), then resumed
    run4 = study / "run-4"

    def run4_under_way():
        rows = [read_results(d) for d in trial_dirs(study) if run4 in d.parents]
        return any(rows) and not all(r and r[-1].get("done") for r in rows)

    started = sigkill_driver_when([sys.executable, "-m", "study", "run", str(grown), "--into",
                                   str(study), "--seeds", "0", "--epochs", "2", *on],
                                  env, REPO, run4_under_way)
    assert started, "run 4 never got under way"
    out = cli(env, "resume", study, *on)
    assert "run 4" in out and "run 3 at" not in out, out      # finished runs are left alone
    trials = study_trials(study)
    finished = Counter(t.trial_key for t in trials if t.status in FINISHED)
    assert len(finished) == 12 and set(finished.values()) == {1}, finished
    assert {d: b for d, b in snapshot(study).items() if d in before} == before
    df = load_study(study)
    assert Counter(df["epochs"]) == {1: 9, 2: 3} and set(df["status"]) == {"terminated"}
