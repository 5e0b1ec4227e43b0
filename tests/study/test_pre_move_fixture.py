"""Study folders written by earlier code still resume and report (real Ray): one from before
the redesign of issue 19, one from a74942e (before issue 38's store).

``tests/fixtures/pre_move_study`` was written by the code before the move (see its README):
one finished CE trial and one ELM + DRW trial that errored after epoch 1, with its epoch-1
checkpoint. Ray pickled classes into it by module path (Tune's callbacks, the trial folder
namer); a move that breaks one of those paths breaks every existing study's resume.
"""
from __future__ import annotations

import importlib
import io
import json
import pickletools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "pre_move_study"
A74942E = REPO / "tests" / "fixtures" / "a74942e_study"   # written by a74942e (its README)
PROJECT = ("trainables", "search_spaces", "study", "analysis")


def pickled_globals(data: bytes) -> set[tuple[str, str]]:
    """(module, name) of every global a pickle names: STACK_GLOBAL takes the last two strings
    pushed, which may come back from the memo (a module name pickled before is a BINGET)."""
    strings, memo, found, last = [], {}, set(), None
    for op, arg, _ in pickletools.genops(io.BytesIO(data)):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
            last = arg
            continue
        if op.name == "MEMOIZE":
            memo[len(memo)] = last
        elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = last
        elif op.name in ("GET", "BINGET", "LONG_BINGET"):
            if isinstance(memo.get(arg), str):
                strings.append(memo[arg])
                last = memo[arg]
                continue
        elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
            found.add((strings[-2], strings[-1]))
        elif op.name == "GLOBAL":
            found.add(tuple(arg.split(" ", 1)))
        last = None
    return found


def fixture_pickles(fixture: Path = FIXTURE) -> list[bytes]:
    blobs = [p.read_bytes() for p in fixture.rglob("*.pkl")]
    for state in fixture.glob("experiment_state-*.json"):
        blobs += [bytes.fromhex(h) for h in re.findall(r'"value": "([0-9a-f]+)"',
                                                       state.read_text())]
    return blobs


@pytest.mark.parametrize("fixture", [FIXTURE, A74942E], ids=["pre_move", "a74942e"])
def test_every_project_class_path_in_the_fixture_imports(fixture):
    names = set()
    for blob in fixture_pickles(fixture):
        try:
            names |= pickled_globals(blob)
        except Exception:   # a blob that is not a pickle of its own (nested payloads)
            continue
    ours = {(m, n) for m, n in names if m.split(".")[0] in PROJECT}
    # what the fixture is known to hold; the scan must see them, or it proves nothing
    assert ("study.progress_callback", "StudyProgress") in ours
    assert ("study.launcher", "trial_dirname") in ours
    for module, name in sorted(ours):
        obj = importlib.import_module(module)
        for part in name.split("."):
            if part.startswith("<"):   # a local class, pickled by value
                break
            obj = getattr(obj, part)


def test_optuna_searcher_keeps_its_path():
    """Optuna studies' folders pickle the resumable searcher by module path."""
    pytest.importorskip("optuna")
    mod = importlib.import_module("search_spaces.optuna_resumable")
    assert hasattr(mod, "ResumableOptunaSearch")


# (fixture, the trial that errored after epoch 1, the trial that finished): two generations
# of study folders, each written by the code of its time (see their READMEs)
GENERATIONS = [(FIXTURE, "ELM", "CE"), (A74942E, "CE", "ELM")]


@pytest.mark.ray
@pytest.mark.parametrize("fixture, errored, finished", GENERATIONS,
                         ids=[g[0].name for g in GENERATIONS])
def test_old_study_folders_resume_and_report(fixture, errored, finished, tmp_path, shared_ray):
    study = tmp_path / fixture.name
    shutil.copytree(fixture, study)
    env = dict(shared_ray["env"])
    env.pop("ELM_INJECT_FAULT", None)
    out = subprocess.run([sys.executable, "-m", "study", "resume", str(study),
                          *shared_ray["args"]], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    rows = {}
    for d in study.iterdir():
        if (d / "result.json").exists():
            rows[d.name] = [json.loads(x) for x in (d / "result.json").read_text().splitlines()
                            if x.strip()]
    resumed = next(v for k, v in rows.items() if k.startswith(errored))
    done = next(k for k in rows if k.startswith(finished))
    assert [r["epoch"] for r in resumed] == [1, 2]
    assert resumed[-1]["resumed_from_epoch"] == 1    # from the old code's checkpoint
    assert resumed[-1]["done"] is True
    assert [r["epoch"] for r in rows[done]] == [1, 2]   # the finished trial is not rerun
    assert (study / done / "result.json").read_text() == (
        fixture / done / "result.json").read_text()
    assert "every trial" not in out.stdout           # it did resume something
    # and the resumed folder reports: both trials, the old one's rows beside the new
    rep = subprocess.run([sys.executable, "-m", "analysis", "report", str(study)], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=300)
    assert rep.returncode == 0, rep.stderr[-3000:]
    md = (study / "report" / "report.md").read_text()
    assert "2 trials: terminated 2" in md, md[:1500]
