"""The study store (trainables.store; issue 38): study.json read into records and written back
in the layout every version wrote; old pickled state read into today's records; the study
folder's files named only by the store and the Ray layer's writers; labels composed, never cut
out of strings. Ray-free and fast."""
from __future__ import annotations

import ast
import json
import pickle
from pathlib import Path

import pytest

from trainables.store import (PackMembership, Resources, RunOptions, RunRecord, StudyError,
                              StudyFolder, StudyRecord, read_study, study_trials, write_study)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = [REPO / "tests/fixtures/pre_move_study", REPO / "tests/fixtures/a74942e_study"]


@pytest.mark.parametrize("folder", FIXTURES, ids=lambda p: p.name)
def test_old_study_files_read_into_records_and_write_back_the_same_layout(folder, tmp_path):
    written = json.loads((folder / "study.json").read_text())
    study = read_study(folder)
    assert study.name == written["name"] and study.expected_trials == written["expected_trials"]
    assert study.runs[0].options.max_failures == 0 and study.runs[0].resources == Resources(1, 0)
    assert study.runs[0].options.pack == 1   # pre-move run entries did not say: the study's
    write_study(tmp_path, study)
    again = json.loads((tmp_path / "study.json").read_text())
    for d in (written, again):
        d.pop("written_at")
    if "pack" not in written:     # the pre-move file: today's writer says every option
        assert again.pop("pack") == 1 and again["runs"][0].pop("pack") == 1
        assert again["runs"][0].pop("workers_per_trial") == 1
    assert again == written
    assert read_study(tmp_path) == study


def test_a_first_version_study_file_is_one_run_with_the_studys_options(tmp_path):
    (tmp_path / "study.json").write_text(json.dumps({
        "name": "old", "space": "smoke", "expected_trials": 4, "cpus_per_trial": 2.0,
        "resources": {"cpu": 2.0, "gpu": 0.25}, "someone_elses_key": [1, 2]}))
    study = read_study(tmp_path)
    assert study.runs == (RunRecord(1, RunOptions(cpus_per_trial=2.0), launched=4,
                                    resources=Resources(2.0, 0.25)),)
    assert study.options_of(1).cpus_per_trial == 2.0 and study.options_of(7) == study.options
    write_study(tmp_path, study)      # a key this version does not know is kept, not lost
    assert json.loads((tmp_path / "study.json").read_text())["someone_elses_key"] == [1, 2]


@pytest.mark.parametrize("text, what", [("{", "not valid JSON"), ("[1]", "not a study's"),
                                        ('{"name": "x", "runs": [{"kept": "many"}]}',
                                         "wrong kind of value")])
def test_a_damaged_study_file_is_one_error_naming_it(tmp_path, text, what):
    (tmp_path / "study.json").write_text(text)
    with pytest.raises(StudyError, match=what) as e:
        read_study(tmp_path)
    assert str(tmp_path / "study.json") in str(e.value)
    damage = []
    assert StudyFolder(tmp_path, damage).record is None and len(damage) == 1


def test_a_progress_callback_pickled_with_a_meta_dict_reads_into_a_record():
    """What a74942e's StudyProgress pickled (its state with ``meta``), unpickled today."""
    from study.progress_callback import StudyProgress
    old = object.__new__(StudyProgress)
    old.__setstate__({"meta": {"name": "s", "space": "smoke", "expected_trials": 6,
                               "max_failures": 1, "run_trials": 2}, "path": "/x",
                      "every_s": 30.0})
    assert old.study.name == "s" and old.study.options.max_failures == 1
    assert old.run_trials == 2 and old.expected == 2
    new = StudyProgress(StudyRecord("s", expected_trials=6), "/x", run_trials=None)
    back = pickle.loads(pickle.dumps(new))
    assert back.study == new.study and back.expected == 6


def test_member_rows_say_their_member_and_older_rows_are_placed_by_their_id(tmp_path):
    from trainables.store.trials import pack_membership
    assert pack_membership(tmp_path / "x", [{"pack_trial_id": "abcde_00001", "pack_member": 3,
                                             "trial_id": "abcde_00001_m3"}]) == \
        PackMembership("abcde_00001", 3)
    assert pack_membership(tmp_path / "x", [{"pack_trial_id": "abcde_00001",
                                             "trial_id": "abcde_00001_m2"}]) == \
        PackMembership("abcde_00001", 2)
    assert pack_membership(tmp_path / "CE_seed0_abcde_00001_m4", []) == \
        PackMembership("abcde_00001", 4)
    assert pack_membership(tmp_path / "CE_seed0_abcde_00001", []) is None


def test_a_study_folder_reads_each_trial_once(monkeypatch):
    """The report's StudyFolder: every loader given it reads no trial folder again."""
    import trainables.store.trials as trials
    from analysis.collect import load_curves, load_study, study_runs
    calls = []
    real = trials.read_results
    monkeypatch.setattr(trials, "read_results", lambda d, damage=None: calls.append(d) or
                        real(d, damage))
    folder = StudyFolder(FIXTURES[1])
    df = load_study(folder)
    load_curves(folder), study_runs(folder, df), load_study(folder, every_run=True)
    assert len(calls) == len(study_trials(FIXTURES[1])) == 2 and len(set(calls)) == 2


# =========================================================================================
# scans of the source
# =========================================================================================
PACKAGES = ("trainables", "search_spaces", "study", "analysis", "bench")
# a study folder's files, and who may name them: the store reads them all; in the Ray layer
# tune_files reads Tune's state, pack_storage writes a pack member's folder and storage reads
# a running trial's own stored rows back (the lost-epoch re-report); the decoupled stage writes
# its own result.json; the MLflow logger attaches study.json as an artifact
FOLDER_FILES = ("study.json", "params.json", "result.json", "experiment_state")
MAY_NAME = ("trainables/store/", "trainables/ray_layer/tune_files.py",
            "trainables/ray_layer/pack_storage.py", "trainables/ray_layer/storage.py",
            "trainables/decoupled.py",
            "study/loggers.py")


def _sources():
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            yield path.relative_to(REPO).as_posix(), ast.parse(path.read_text())


def _names_folder_file(tree) -> list[str]:
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef,
                                    ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr)}
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str) and id(n) not in docstrings
            and n.value.lstrip("/").startswith(FOLDER_FILES)]   # a name, not prose


def test_only_the_store_and_the_ray_layers_writers_name_a_study_folders_files():
    found = {rel: hits for rel, tree in _sources() if (hits := _names_folder_file(tree))}
    assert found, "the scan must see the store's own names"
    assert {rel for rel in found if not rel.startswith(MAY_NAME)} == set(), found


def test_the_scan_sees_a_planted_reader():
    tree = ast.parse('import json\nrows = json.loads(open(d + "/result.json").read())\n')
    assert _names_folder_file(tree) == ["/result.json"]


LABEL_CUTS = (" seed ", "_seed", "_m")   # a trial's name or id cut apart to find its parts


def test_no_label_or_member_id_is_cut_out_of_a_string():
    cuts = [f"{rel}:{n.lineno}" for rel, tree in _sources() for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr in ("rpartition", "partition", "rsplit", "split")
            and n.args and isinstance(n.args[0], ast.Constant) and n.args[0].value in LABEL_CUTS]
    assert cuts == []
