"""Issue 35: a trial whose training data cannot exist (a class emptied by the long-tail
subsampling, more images asked of a class than the source holds) is refused before anything
runs, by every entry point, in one line naming dataset, img_max, ratio, imb_type and the first
class at fault: the trial CLI, `elm-study run` and its dry run, `--into`, a search (at
validation, from the extremes of its space), `resume` of a folder written before the check;
`show` reports it. Ray is never started and nothing is created. The boundary still runs."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import ray

from search_spaces.search import data_size_extremes
from study.cli import main as study_main
from trainables.config import TrialConfig
from trainables.data.imbalance import class_counts, holdout_size
from trainables.data.registry import DataSizeError, get_dataset, training_counts
from trainables.run import main as trial_main

REPO = Path(__file__).resolve().parents[2]
EMPTIED = r"class \d+ would keep 0 training images; every class needs at least one"
TOO_MANY = r"class 0 has 100 training images, 500 requested"


def one_line_exit_2(capsys, call, *argv) -> str:
    """Runs a CLI's main; returns its one error line after checking exit 2, nothing on
    stdout, no traceback, Ray not started."""
    try:
        rc = call(list(argv))
    except SystemExit as e:          # the trial CLI exits as argparse does
        rc = e.code
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, out.err
    assert "Traceback" not in out.err and out.out == ""
    assert not ray.is_initialized()
    return lines[0]


# =========================================================================================
# the one rule
# =========================================================================================
@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "fashion_mnist", "synthetic"])
@pytest.mark.parametrize("imb_type", ["lt", "step"])
def test_training_counts_are_the_trials_counts_and_refuse_exactly_what_cannot_exist(
        dataset, imb_type):
    info = get_dataset(dataset)
    for img_max in (1, 7, info.train_per_class, info.train_per_class + 1):
        for ratio in (1.0, 2.5, 49.0, 100.0, img_max, img_max + 0.5, 1000.0):
            fields = dict(dataset=dataset, imb_type=imb_type, img_max=img_max,
                          ratio=max(float(ratio), 1.0), val_fraction=0.1)
            want = class_counts(info.num_classes, img_max, imb_type, fields["ratio"])
            possible = want[0] <= info.train_per_class and min(want) >= 1
            if not possible:
                with pytest.raises(DataSizeError, match=rf"dataset {dataset}, img_max "
                                   rf"{img_max}, ratio {fields['ratio']:g}, imb_type {imb_type}"):
                    TrialConfig(**fields)
                continue
            got = training_counts(TrialConfig(**fields))
            assert got == [n - holdout_size(n, 0.1) for n in want] and min(got) >= 1


def test_the_validation_hold_out_never_empties_a_class():
    for n in range(1, 60):
        for f in (0.0, 0.01, 0.1, 0.5, 0.9, 0.99):
            k = holdout_size(n, f)
            assert 0 <= k <= max(n - 1, 0) and (f == 0 or n == 1 or k >= 1)


def test_a_search_space_is_checked_at_its_data_size_extremes():
    space = {"ratio": ("uniform", [10.0, 200.0]), "img_max": ("int", [50, 100]),
             "lam": ("uniform", [0.0, 1.0]), "imb_type": ("choice", ["lt", "step"])}
    points = data_size_extremes(space)
    assert len(points) == 8 and all(p["lam"] == 0.5 for p in points)
    assert {(p["ratio"], p["img_max"], p["imb_type"]) for p in points} == {
        (r, m, t) for r in (10.0, 200.0) for m in (50, 100) for t in ("lt", "step")}


# =========================================================================================
# the trial CLI
# =========================================================================================
@pytest.mark.parametrize("argv, match", [
    (["--img-max", "100", "--ratio", "150"], EMPTIED),
    (["--img-max", "100", "--ratio", "150", "--imb-type", "step"], EMPTIED),
    (["--img-max", "500"], TOO_MANY),
    (["--img-max", "100", "--ratio", "100.5"], r"class 9 would keep 0"),
])
def test_the_trial_cli_refuses_in_one_line(capsys, tmp_path, argv, match):
    line = one_line_exit_2(capsys, trial_main, "--dataset", "synthetic", "--device", "cpu",
                           "--out", str(tmp_path / "out"), *argv)
    assert re.search(match, line) and "dataset synthetic, img_max" in line, line
    assert not (tmp_path / "out").exists()


def test_the_boundary_still_runs(capsys, tmp_path):
    """ratio = img_max keeps exactly one image in the rarest class: it trains."""
    rc = trial_main(["--dataset", "synthetic", "--img-max", "100", "--ratio", "100",
                     "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "out")])
    assert rc == 0
    row = json.loads((tmp_path / "out" / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["status"] == "finished"
    assert "counts=[100, 59, 35, 21, 12, 7, 4, 2, 1, 1]" in capsys.readouterr().out


# =========================================================================================
# the study CLI
# =========================================================================================
@pytest.mark.parametrize("change, match, refused", [
    (["--set", "ratio=200"], EMPTIED, "4 of 4 trials are refused"),
    (["--set", "img_max=500"], TOO_MANY, "4 of 4 trials are refused"),
    (["--grid", "ratio=10,41"], r"img_max 40, ratio 41, imb_type lt: class 9 would keep 0",
     "4 of 8 trials are refused"),
])
@pytest.mark.parametrize("mode", ["run", "dry-run"])
def test_a_study_run_and_its_dry_run_refuse_in_one_line(capsys, tmp_path, change, match,
                                                        refused, mode):
    store = tmp_path / "store"
    argv = ["run", "smoke", "--storage", str(store), *change]
    line = one_line_exit_2(capsys, study_main, *argv, *(["--dry-run"] if mode == "dry-run"
                                                       else []))
    assert re.search(match, line) and refused in line, line
    assert not store.exists()


def test_cifar100_ratio_sweep_to_1000_is_refused_naming_how_many(capsys, tmp_path):
    line = one_line_exit_2(capsys, study_main, "run", "ratio_sweep", "--set",
                           "dataset=cifar100", "--grid", "ratio=100,1000", "--dry-run",
                           "--storage", str(tmp_path / "s"))
    assert "dataset cifar100, img_max 500, ratio 1000, imb_type lt: class 90" in line
    assert "12 of 24 trials are refused" in line


def test_into_a_study_refuses_the_impossible_trials(capsys, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    line = one_line_exit_2(capsys, study_main, "run", "smoke", "--into", "smoke", "--storage",
                           str(store), "--set", "ratio=200")
    assert re.search(EMPTIED, line)
    assert list(store.iterdir()) == []


def test_a_search_that_can_draw_impossible_data_is_refused_at_validation(capsys, tmp_path):
    study = tmp_path / "search.yaml"
    study.write_text(
        "description: ratio searched past what img_max 50 can hold\n"
        "base: {dataset: synthetic, img_max: 50, epochs: 1, loss: elm, val_fraction: 0.2,"
        " device: cpu}\n"
        "search:\n  sampler: random\n  seed: 0\n  num_samples: 4\n  metric: val_top1\n"
        "  mode: max\n  space:\n    ratio: uniform(10, 60)\n    lam: uniform(0, 1)\n")
    line = one_line_exit_2(capsys, study_main, "run", str(study), "--storage",
                           str(tmp_path / "s"))
    assert "search point" in line and "img_max 50, ratio 60" in line
    assert re.search(EMPTIED, line), line
    # the shipped search at img_max 40 (int(40 / 100) = 0 in the rarest class)
    line = one_line_exit_2(capsys, study_main, "run", "optuna_elm", "--set", "dataset=synthetic",
                           "--set", "img_max=40", "--dry-run", "--storage", str(tmp_path / "s"))
    assert re.search(EMPTIED, line), line
    assert not (tmp_path / "s").exists()


def test_show_reports_what_run_would_refuse(capsys):
    rc = study_main(["show", "smoke", "--set", "ratio=200"])
    out = capsys.readouterr()
    assert rc == 0 and out.err == ""
    last = out.out.strip().splitlines()[-1]
    assert last.startswith("# cannot run as it is: ") and re.search(EMPTIED, last), last
    assert "4 of 4 trials are refused" in last


def test_resume_of_a_folder_written_before_the_check_is_refused_before_ray(capsys, tmp_path):
    """A study folder whose unfinished trial asks for data that cannot exist (written by code
    that did not check): resume says so in one line instead of failing it attempt after
    attempt on Ray."""
    study = tmp_path / "old"
    shutil.copytree(REPO / "tests" / "fixtures" / "pre_move_study", study)
    (params,) = study.glob("ELM+DRW_*/params.json")          # the errored, unfinished trial
    config = json.loads(params.read_text())
    config["base"]["ratio"] = 1000.0
    params.write_text(json.dumps(config))
    before = sorted(p.name for p in study.rglob("*"))
    line = one_line_exit_2(capsys, study_main, "resume", str(study))
    assert "1 unfinished trial(s) cannot run as they are" in line and re.search(EMPTIED, line)
    assert sorted(p.name for p in study.rglob("*")) == before
