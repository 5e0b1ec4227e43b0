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
def test_a_dry_run_checks_the_data_location_as_the_trials_would(capsys, tmp_path, study,
                                                                  where):
    """Data missing where the trials would read it: refused before Ray, in one line naming
    the dataset, where it looked and how to fix it; nothing is created. The same files are
    fine for a study on a cluster, whose workers read their own disks."""
    argv = ["run", study, "--storage", str(tmp_path), "--set", "data_root=/nonexistent"]
    for extra in (["--dry-run"], []):
        rc, out, err = run_cli(capsys, *argv, *extra)
        assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1, err
        assert where in err and "--download" in err and "Traceback" not in err
        assert not any(tmp_path.iterdir())
    rc, out, err = run_cli(capsys, *argv, "--dry-run", "--address", "10.0.0.1:6379")
    assert rc == 0, err


def test_list_shows_every_space_with_counts(capsys):
    rc, out, _ = run_cli(capsys, "list")
    assert rc == 0
    for name, n in (("table1", 480), ("quickstart", 6), ("lambda_sweep", 150)):
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
