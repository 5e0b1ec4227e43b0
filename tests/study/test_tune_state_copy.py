"""A driver killed while Tune rewrites its experiment state must not lose the run's trial list
(issue 38's known gap; trainables/ray_layer/tune_state.py).

Tune rewrites ``experiment_state-*.json`` in place; a SIGKILL inside that write leaves it empty
and ``Tuner.restore`` would restore no trial. The instant cannot be hit on purpose, so the test
does what the kill leaves behind: it empties the state of a real finished study, then resumes.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainables.ray_layer.tune_state import COPY_SUFFIX, STATE_GLOB, keep_copies, restore_damaged
from trainables.ray_layer.tune_files import statuses as tune_statuses

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[2]


def cli(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "study", *map(str, args)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_an_emptied_experiment_state_is_restored_by_resume(tmp_path, shared_ray):
    env = shared_ray["env"]
    p = cli(env, "run", "smoke", "--storage", tmp_path, "--name", "s", "--set", "epochs=1",
            *shared_ray["args"])
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    study = tmp_path / "s"
    states = sorted(study.glob(STATE_GLOB))
    assert states, sorted(x.name for x in study.iterdir())
    state = states[-1]
    copy = state.with_name(state.name + COPY_SUFFIX)
    # the driver kept a complete copy while it ran (the progress callback)
    assert copy.exists() and "trial_data" in json.loads(copy.read_text())
    trials = tune_statuses(study)
    assert len(trials) == 4 and set(trials.values()) == {"TERMINATED"}

    state.write_text("")              # what a SIGKILL inside Tune's rewrite leaves behind
    assert tune_statuses(study) == {} or len(states) > 1
    r = cli(env, "resume", "s", "--storage", tmp_path, *shared_ray["args"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"{state.name} was empty or cut" in r.stdout and "restored from its last " \
        "complete copy" in r.stdout, r.stdout[-3000:]
    assert "nothing to resume" in r.stdout     # every trial is back, and finished
    assert tune_statuses(study) == trials


def test_copies_are_only_of_complete_states_and_restore_only_damaged_ones(tmp_path):
    exp = tmp_path / "study"
    (exp / "run-2").mkdir(parents=True)
    good = {"trial_data": [], "runner_data": {}}
    a = exp / "experiment_state-2026-12-06_01-00-00.json"
    b = exp / "run-2" / "experiment_state-2026-12-06_02-00-00.json"
    a.write_text(json.dumps(good))
    b.write_text('{"trial_data": [')              # cut mid-write: never copied
    assert keep_copies(exp) == 1 and keep_copies(exp) == 0      # unchanged: not again
    assert not b.with_name(b.name + COPY_SUFFIX).exists()
    assert restore_damaged(exp) == []                            # a is fine: left alone
    a.write_text("")
    assert restore_damaged(exp) == [a.name]
    assert json.loads(a.read_text()) == good
    # the copies are not state files to Tune (its glob ends in .json)
    assert sorted(p.name for p in exp.glob(STATE_GLOB)) == [a.name]
