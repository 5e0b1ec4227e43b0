"""The console and ``elm-study status`` say the same thing of every trial (issue 38).

A real Optuna + ASHA search (the shipped ``optuna_elm`` study, on synthetic data, joining the
session's shared cluster) in which ASHA stops trials early. The console's ``done`` line of each
trial names its status and epochs; ``elm-study status`` reads the study folder afterwards. The
two used to disagree on every trial ASHA stopped (``(running, 1 epochs)`` against ``stopped``):
here they must agree trial by trial, and the run must hold both a stopped and a terminated
trial, so the test cannot pass without exercising an ASHA stop.
"""
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from study.summary import status_counts

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[2]
EPOCHS = 3
# "done   <who> [<trial id>]  top-1 <x>  best <y> @<e>  (<status>, <n> epochs)"
DONE = re.compile(r"^done   .* \[(\S+)\]  top-1 \S+  best \S+ @\S+  \((\w+), (\S+) epochs\)$",
                  re.M)
STATUS = re.compile(r"^study \S+ \(.*\): (\d+)/\d+ trials seen; (.*)$", re.M)


def asha_study_file(tmp_path: Path) -> Path:
    """optuna_elm as shipped, but its ASHA rules on the training loss: the synthetic hold-out
    is so small that val_top1 ties at the first rung (ASHA then stopped nothing, measured),
    while the loss differs between any two samples. With the shipped reduction factor (4) a
    trial reaching the rung goes on only if its loss is in the best quarter so far; the first
    one always runs to its last epoch. One trial at a time: the order trials reach the rung
    in, and so which ones ASHA stops, is then the sampler's (seeded), not the machine's."""
    spec = yaml.safe_load((REPO / "search_spaces/studies/optuna_elm.yaml").read_text())
    assert spec["scheduler"]["type"] == "asha", spec["scheduler"]
    spec["scheduler"].update(metric="train_loss", mode="min")
    path = tmp_path / "optuna_elm_asha.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True))
    return path


def cli(env, *args) -> str:
    p = subprocess.run([sys.executable, "-m", "study", *map(str, args)], env=env, cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p.stdout


def test_console_and_status_agree_on_asha_stopped_trials(tmp_path, shared_ray):
    env = shared_ray["env"]
    out = cli(env, "run", asha_study_file(tmp_path), "--storage", tmp_path, "--name", "asha",
              "--option", "dataset=synthetic", "--option", "ratio=10", "--option",
              "num_samples=6", "--set", f"epochs={EPOCHS}", "--set", "eval_every=1", "--set",
              "batch_size=32", "--set", "img_max=40", "--max-concurrent", "1",
              *shared_ray["args"])
    console = {tid: (status, int(epochs)) for tid, status, epochs in DONE.findall(out)}
    assert len(console) == 6, out[-4000:]

    df, _ = status_counts(tmp_path / "asha")             # what `elm-study status` counts
    stored = {r.trial_id: (r.status, int(r.epochs_done)) for r in df.itertuples()}
    assert console == stored, (console, stored)
    statuses = Counter(s for s, _ in console.values())
    assert statuses["stopped"] and statuses["terminated"], statuses   # ASHA did stop some
    assert all(n < EPOCHS for s, n in console.values() if s == "stopped")

    shown = STATUS.search(cli(env, "status", "asha", "--storage", tmp_path))
    assert shown, "no counts line in `elm-study status`"
    counts = {k: int(v) for k, v in (p.rsplit(" ", 1) for p in shown.group(2).split(", "))}
    assert int(shown.group(1)) == 6 and counts == dict(statuses), (shown.group(0), statuses)
