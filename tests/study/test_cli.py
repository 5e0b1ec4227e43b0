"""The study CLI before Ray starts: dry runs and one clear exit-2 line per bad input."""
import json
import re

import pytest

from study.cli import main


def run_cli(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_dry_run_table1_reports_480_trials(capsys, tmp_path, cifar_root):
    rc, out, err = run_cli(capsys, "run", "table1", "--dry-run", "--storage", str(tmp_path),
                           "--set", f"data_root={cifar_root}")
    assert rc == 0, err
    assert "480 trials" in out
    assert not any(tmp_path.iterdir()), "a dry run must create nothing"


@pytest.mark.parametrize("study, where", [("table1", "cifar-10-batches-py"),
                                          ("quickstart", "looked in /nonexistent")])
def test_a_real_run_refuses_missing_data_before_ray(capsys, tmp_path, study, where):
    """Data missing where the trials would read it: a real run is refused before Ray, in one
    line naming the dataset, where it looked and how to fix it; nothing is created."""
    rc, out, err = run_cli(capsys, "run", study, "--storage", str(tmp_path), "--set",
                           "data_root=/nonexistent")
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert where in err and "--download" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_a_dry_run_plans_without_the_data_and_names_what_is_missing(capsys, tmp_path):
    """Issue 23: the whole plan, then one line per missing data location (CIFAR-10 and
    CIFAR-100 here: what, where it looked, how to fix), exit 0, nothing created. On a cluster
    the workers read their own disks: nothing is reported missing here."""
    argv = ["run", "table1", "--dry-run", "--storage", str(tmp_path), "--set",
            "data_root=/nonexistent"]
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 0 and err == "", err
    assert "# 480 trials" in out and out.index("# 480 trials") < out.index("missing data:")
    missing = [ln for ln in out.splitlines() if ln.startswith("missing data: ")]
    assert len(missing) == 2, out
    for line, folder, file in zip(missing, ("cifar-10-batches-py", "cifar-100-python"),
                                  ("'data_batch_1'", "'train'")):
        assert f"missing from /nonexistent/{folder}" in line and file in line, line
        assert "--download" in line and "--set data_root=PATH" in line
    assert not any(tmp_path.iterdir())
    rc, out, err = run_cli(capsys, *argv, "--address", "10.0.0.1:6379")
    assert rc == 0 and "missing data" not in out, err


def test_list_shows_every_space_with_counts(capsys):
    rc, out, _ = run_cli(capsys, "list")
    assert rc == 0
    for name, n in (("table1", 480), ("quickstart", 9), ("lambda_sweep", 150)):
        line = next(ln for ln in out.splitlines() if ln.startswith(name + " "))
        assert f"{n} trials" in line


def test_seeds_and_epochs_reach_the_trials(capsys, tmp_path):
    rc, out, err = run_cli(capsys, "run", "table1", "--dry-run", "--seeds", "7",
                           "--epochs", "20", "--set", "precision=bf16", "--download",
                           "--storage", str(tmp_path))
    assert rc == 0, err
    assert "160 trials" in out
    first = json.loads(next(ln for ln in out.splitlines() if ln.startswith("#   {"))[4:])
    assert first["seed"] == 7 and first["epochs"] == 20 and first["precision"] == "bf16"


@pytest.mark.parametrize("argv, match", [
    (["run", "tabel1"], r"unknown study 'tabel1'.*table1"),
    (["run", "smoke", "--set", "lamda=0.5"], r"unknown config key 'lamda'"),
    (["run", "smoke", "--set", "epochs=two"], r"'epochs' expects int, got 'two'"),
    (["run", "smoke", "--set", "lam=-0.5"], r"lam=-0\.5 is out of range"),
    (["run", "smoke", "--set", "s=abc"], r"'s' expects None or float"),
    (["run", "quickstart", "--set", "reg_lambda=0.1"], r"--set reg_lambda: no method of this study"),
    (["run", "quickstart", "--grid", "reg_lambda=0.1,0.2"], r"grid reg_lambda: no method"),
    (["run", "quickstart", "--grid", "lam=0..x"], r"--grid lam: .*'0\.\.x'"),
    (["run", "quickstart", "--grid", "seed"], r"--grid expects key=value"),
    (["run", "smoke", "--into", "no-such-study"], r"no study at 'no-such-study'"),
    (["run", "smoke", "--workers-per-trial", "3"], r"batch_size=32 .*workers_per_trial=3"),
    (["run", "smoke", "--workers-per-trial", "0"], r"--workers-per-trial must be >= 1"),
    (["run", "no-such-file.yaml"], r"no-such-file\.yaml: no such study file"),
    (["run", "smoke", "--set", "ratio=0.5"], r"ratio=0\.5 is out of range"),
    (["run", "smoke", "--set", "lam"], r"--set expects key=value"),
    (["run", "smoke", "--seeds", "a,b"], r"--seeds expects comma-separated integers"),
    (["run", "smoke", "--gpus-per-trial", "-1"], r"--gpus-per-trial must be >= 0"),
    (["run", "smoke", "--max-concurrent", "0"], r"--max-concurrent must be >= 1"),
    (["run", "smoke", "--option", "colour=red"], r"has no option 'colour'"),
    (["status", "no-such-study"], r"no study at 'no-such-study'"),
    (["resume", "no-such-study"], r"no study at 'no-such-study'"),
])
def test_bad_input_exits_2_with_one_clear_line(capsys, tmp_path, argv, match):
    rc, out, err = run_cli(capsys, *argv, "--storage", str(tmp_path / "store"))
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("elm-study: error: ")
    assert re.search(match, lines[0]), lines[0]
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").iterdir())


def test_unwritable_storage_exits_2(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    rc, _, err = run_cli(capsys, "run", "smoke", "--storage", str(blocker / "results"))
    assert rc == 2 and "is not writable" in err


def test_existing_study_of_another_space_is_refused(capsys, tmp_path):
    study = tmp_path / "mine"
    study.mkdir()
    (study / "study.json").write_text(json.dumps({"space": "table1", "name": "mine"}))
    rc, _, err = run_cli(capsys, "run", "smoke", "--name", "mine", "--storage", str(tmp_path))
    assert rc == 2
    assert "already exists of study 'table1'" in err and "--force" in err and "--into" in err
    assert json.loads((study / "study.json").read_text())["space"] == "table1"   # untouched


def test_a_dry_run_checks_the_storage_as_the_run_would(capsys, tmp_path):
    for storage in ("/proc/forbidden", str(tmp_path / "a-file" / "results")):
        (tmp_path / "a-file").write_text("not a folder")
        rc, _, err = run_cli(capsys, "run", "smoke", "--dry-run", "--storage", storage)
        assert rc == 2 and "is not writable" in err and len(err.strip().splitlines()) == 1
    rc, _, err = run_cli(capsys, "show", "smoke", "--set", "lamda=1")
    assert rc == 2 and "unknown config key 'lamda'" in err


def test_show_prints_a_study_file_that_runs_as_shown(capsys, tmp_path, cifar_root):
    rc, out, err = run_cli(capsys, "show", "ratio_sweep", "--seeds", "0,1")
    assert rc == 0, err
    assert "methods: [ce, ldam+drw, elm+drw(lam=0.5), elm_wo_dy(lam=1.0)]" in out
    assert "# 32 trials" in out
    copy = tmp_path / "mine.yaml"
    copy.write_text(out)
    rc, out2, err = run_cli(capsys, "run", str(copy), "--dry-run", "--storage", str(tmp_path),
                            "--set", f"data_root={cifar_root}")
    assert rc == 0 and "# 32 trials" in out2, err


def test_resource_flags_and_study_file_keys_are_one_list():
    from search_spaces.studyfile import RESOURCE_KEYS
    from study.options import RunOptions
    assert tuple(RESOURCE_KEYS) == RunOptions.fields()


def _one_run_study(tmp_path):
    """A study folder as run 1 of smoke leaves it (study.json only: no trial has reported)."""
    study = tmp_path / "grow"
    study.mkdir()
    meta = {"space": "smoke", "name": "grow", "storage": str(tmp_path), "expected_trials": 4,
            "cpus_per_trial": 1.0, "gpus_per_trial": None, "max_concurrent": None,
            "max_failures": 3, "workers_per_trial": 1,
            "runs": [{"run": 1, "dir": ".", "launched": 4, "cpus_per_trial": 1.0}]}
    (study / "study.json").write_text(json.dumps(meta))
    return study


def test_a_resource_flag_given_with_into_runs_the_new_trials_with_it(capsys, tmp_path):
    """`run FILE --into STUDY --workers-per-trial 2`: the new run's trials get 2 workers (one
    line says so; its run entry records it, which is what the launcher and resume read), the
    study's earlier run keeps its 1; a value that cannot run exits 2 naming the flag."""
    from study.plan import plan_run
    from trainables.store import StudyRecord
    study = _one_run_study(tmp_path)
    before = (study / "study.json").read_bytes()
    rc, out, err = run_cli(capsys, "run", "smoke", "--seeds", "5", "--into", str(study),
                           "--workers-per-trial", "2", "--dry-run")
    assert rc == 0, err
    assert "adding 2 as run 2" in out and "run 2 runs with --workers-per-trial 2 (was 1)" in out
    assert "# each trial: 2 Ray Train workers" in out, out
    assert (study / "study.json").read_bytes() == before     # a dry run writes nothing

    flags = {"workers_per_trial": 2, "cpus_per_trial": None}
    plan = plan_run(__import__("search_spaces").get_space("smoke", seeds=[5]), flags,
                    storage=str(tmp_path), into=str(study))
    assert plan.kind == "extend" and plan.run == 2 and plan.options.workers_per_trial == 2
    first, second = plan.study.runs
    assert first.options.workers_per_trial == 1
    assert second.options.workers_per_trial == 2
    assert plan.study.options_of(2).workers_per_trial == 2   # fit_study builds the Tuner from it
    written = StudyRecord.from_json(json.loads(json.dumps(plan.study.to_json())))
    assert written.runs[0].options.workers_per_trial == 1     # ... and study.json keeps both
    assert written.runs[1].options.workers_per_trial == 2

    for value, match in (("0", r"--workers-per-trial must be >= 1, got 0"),
                         ("3", r"batch_size=32 .*workers_per_trial=3")):
        rc, out, err = run_cli(capsys, "run", "smoke", "--into", str(study),
                               "--workers-per-trial", value)
        assert rc == 2 and re.search(match, err) and len(err.strip().splitlines()) == 1, err
        assert (study / "study.json").read_bytes() == before


def test_flags_not_given_with_into_keep_the_studys_values(tmp_path):
    from search_spaces import get_space
    from study.plan import plan_run
    study = _one_run_study(tmp_path)
    meta = json.loads((study / "study.json").read_text())
    meta.update(cpus_per_trial=2.0, max_failures=0)
    meta["runs"][0].update(cpus_per_trial=2.0, max_failures=0)
    (study / "study.json").write_text(json.dumps(meta))
    plan = plan_run(get_space("smoke", seeds=[5]), {}, storage=str(tmp_path), into=str(study))
    assert plan.options.cpus_per_trial == 2.0 and plan.options.max_failures == 0
    assert "runs with" not in plan.headline


def test_workers_per_trial_in_the_trials_dispatches_them_like_the_flag(capsys, tmp_path):
    """`--set workers_per_trial=2` (or `base:`) runs each trial on 2 Ray Train workers, as
    `--workers-per-trial 2` does (the dispatcher reads the run's options, so the plan takes
    the trials' value); trials asking for different counts are refused before Ray starts."""
    rc, out, err = run_cli(capsys, "run", "smoke", "--dry-run", "--storage", str(tmp_path),
                           "--set", "workers_per_trial=2", "--cpus-per-trial", "0.5")
    assert rc == 0, err
    assert "# each trial: 2 Ray Train workers" in out, out
    rc, out, err = run_cli(capsys, "run", "smoke", "--dry-run", "--storage", str(tmp_path),
                           "--grid", "workers_per_trial=1,2")
    assert rc == 2 and "workers_per_trial [1, 2]" in err and "--workers-per-trial" in err, err
    assert not any(tmp_path.iterdir())
