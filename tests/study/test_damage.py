"""Damage is named, not fatal: a copy of a real study folder (tests/fixtures/pre_move_study:
one finished CE trial, one errored ELM trial) damaged as killed writers, full disks and
preempted VMs leave them. Every reader skips what it cannot read, goes on with the intact
trials and names each damaged file in one line; a damaged study.json is one line and exit 2.
Nothing is rewritten or deleted: the folder's bytes are the same before and after."""
import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from study.cli import main

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "pre_move_study"
CE, ELM = "CE_seed0_e9e51_00000", "ELM+DRW_lam0.5_seed0_e9e51_00001"


def _cut(path: Path, n: int) -> None:
    path.write_bytes(path.read_bytes()[:-n])


def _clear(folder: Path) -> None:
    shutil.rmtree(folder)
    folder.mkdir()


CASES = [  # (id, damage(study), exit code, the one stderr line, what status still shows)
    ("torn last line of result.json", lambda s: _cut(s / CE / "result.json", 200), 0,
     rf"^damaged: .*/{CE}/result\.json: its last line \(line 2\) is not whole JSON \(a "
     r"write cut short\?\); read the 1 intact line\(s\)$", "2/2 trials seen; errored 1, stopped 1"),
    ("garbled first line of result.json", lambda s: (s / CE / "result.json").write_text(
        "{oops\n" + (FIXTURE / CE / "result.json").read_text().split("\n", 1)[1]), 0,
     r"result\.json: line\(s\) 1 of 2 are not JSON; read the 1 intact line\(s\)$",
     "2/2 trials seen; errored 1, terminated 1"),
    ("binary result.json", lambda s: (s / CE / "result.json").write_bytes(b"\xff\xfe\x00" * 50),
     0, r"result\.json: its last line \(line 1\) is not whole JSON", "2/2 trials seen"),
    ("zero-byte result.json", lambda s: (s / CE / "result.json").write_bytes(b""), 0,
     rf"^damaged: .*/{CE}/result\.json: missing or empty, but Tune recorded the trial as "
     r"TERMINATED: its reported epochs are lost$", "2/2 trials seen; errored 1, running 1"),
    ("missing params.json", lambda s: (s / ELM / "params.json").unlink(), 0,
     rf"^damaged: .*/{re.escape(ELM)}: no params\.json \(the trial's config\); trial skipped$",
     "1/2 trials seen; terminated 1, not started 1"),
    ("garbled params.json", lambda s: _cut(s / ELM / "params.json", 30), 0,
     rf"^damaged: .*/{re.escape(ELM)}/params\.json: cannot be read as the trial's config "
     r"\(.*line \d+ column \d+.*\); trial skipped$", "1/2 trials seen; terminated 1"),
    ("params.json not a mapping", lambda s: (s / ELM / "params.json").write_text("[1, 2]"), 0,
     r"params\.json: cannot be read as the trial's config \(holds a list, not a trial's "
     r"config\); trial skipped$", "1/2 trials seen"),
    ("empty trial folder", lambda s: _clear(s / ELM), 0,
     rf"^damaged: .*/{re.escape(ELM)}: an empty trial folder \(the trial wrote nothing: "
     r"killed as it started\?\); skipped$", "1/2 trials seen"),
    ("truncated study.json", lambda s: _cut(s / "study.json", 100), 2,
     r"^elm-study: error: .*/study\.json is damaged \(not valid JSON: .*line \d+ column \d+.*"
     r"\); it is the study's record of its runs.*restore it \(nothing was changed\)$", None),
    ("zero-byte study.json", lambda s: (s / "study.json").write_bytes(b""), 2,
     r"^elm-study: error: .*/study\.json is damaged \(not valid JSON: Expecting value", None),
    ("study.json not a mapping", lambda s: (s / "study.json").write_text("[]"), 2,
     r"^elm-study: error: .*/study\.json is damaged \(it holds \[\], not a study's record\)",
     None),
]


def _digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file() else "dir" for p in sorted(folder.rglob("*"))}


@pytest.fixture
def copy(tmp_path):
    study = tmp_path / "pre_move"
    shutil.copytree(FIXTURE, study)
    return study


@pytest.mark.parametrize("damage, rc, line, shows", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_status_names_the_damaged_file_and_goes_on(capsys, copy, damage, rc, line, shows):
    damage(copy)
    before = _digest(copy)
    assert main(["status", str(copy)]) == rc
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and re.search(line, lines[0]), out.err
    assert "Traceback" not in out.err + out.out
    if shows:
        assert shows in out.out, out.out
    else:
        assert out.out == ""
    assert _digest(copy) == before, "a reader changed the study folder"


def test_the_intact_fixture_has_no_damage(capsys, copy):
    assert main(["status", str(copy)]) == 0
    assert capsys.readouterr().err == ""


def test_a_trial_tune_is_still_starting_is_not_damage(copy):
    """A folder Tune made for a trial it lists as RUNNING, before its params.json: normal."""
    from trainables.store import study_trials
    state = next(copy.glob("experiment_state-*.json"))
    data = json.loads(state.read_text())
    for entry in data["trial_data"]:
        trial = json.loads(entry[0])
        if trial["trial_id"] == "e9e51_00001":
            entry[0] = json.dumps({**trial, "status": "RUNNING"})
    state.write_text(json.dumps(data))
    _clear(copy / ELM)
    damage = []
    assert [t.trial_id for t in study_trials(copy, damage)] == ["e9e51_00000"]
    assert damage == []


def test_load_study_and_load_curves_list_the_damage_and_keep_the_rest(copy):
    from analysis.collect import load_curves, load_study, study_runs
    _cut(copy / CE / "result.json", 200)
    (copy / ELM / "params.json").write_text("{")
    damage = []
    df = load_study(copy, damage=damage)
    assert list(df["trial_id"]) == ["e9e51_00000"] and df["epochs_done"].tolist() == [1]
    assert len(damage) == 2 and "result.json: its last line" in damage[0]
    assert "params.json: cannot be read" in damage[1]
    curves_damage = []
    curves = load_curves(copy, damage=curves_damage)
    assert set(curves["epoch"]) == {1} and curves_damage == damage
    assert len(study_runs(copy, df, damage)) == 1


def test_an_extension_of_a_damaged_study_names_it_and_plans_from_the_intact_trials(capsys,
                                                                                   copy):
    """`run FILE --into STUDY` with the errored trial's params.json garbled: one line names
    it; the finished CE trial is kept, the unreadable trial's key counts as absent."""
    before = _digest(copy)
    (copy / ELM / "params.json").write_text("{")
    before = _digest(copy)
    rc = main(["run", str(copy / "study-run-1.yaml"), "--into", str(copy), "--dry-run"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert [x for x in out.err.splitlines() if x.startswith("damaged: ")] == [
        f"damaged: {copy / ELM / 'params.json'}: cannot be read as the trial's config "
        "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1)); "
        "trial skipped"]
    assert "1 finished there already (kept), 0 unfinished in earlier runs; adding 1" in out.out
    assert _digest(copy) == before


def test_resume_plans_from_the_intact_trials_and_names_the_damage(capsys, copy):
    from study.launcher import runs_to_resume
    from trainables.store import read_study
    _cut(copy / CE / "result.json", 200)
    before = _digest(copy)
    todo = runs_to_resume(copy, read_study(copy))
    assert [r.run for r, _ in todo] == [1]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("damaged: ") and "result.json" in err[0]
    assert _digest(copy) == before
