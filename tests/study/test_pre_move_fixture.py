"""A study folder written before the redesign of issue 19 still resumes (real Ray).

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
PROJECT = ("trainables", "search_spaces", "study", "analysis")


def pickled_globals(data: bytes) -> set[tuple[str, str]]:
    """(module, name) of every global a pickle names (STACK_GLOBAL after two strings)."""
    strings, found = [], set()
    for op, arg, _ in pickletools.genops(io.BytesIO(data)):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
            found.add((strings[-2], strings[-1]))
        elif op.name == "GLOBAL":
            found.add(tuple(arg.split(" ", 1)))
        elif op.name.endswith("PUT") or op.name == "MEMOIZE":
            continue
    return found


def fixture_pickles() -> list[bytes]:
    blobs = [p.read_bytes() for p in FIXTURE.rglob("*.pkl")]
    for state in FIXTURE.glob("experiment_state-*.json"):
        blobs += [bytes.fromhex(h) for h in re.findall(r'"value": "([0-9a-f]+)"',
                                                       state.read_text())]
    return blobs


def test_every_project_class_path_in_the_fixture_imports():
    names = set()
    for blob in fixture_pickles():
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


@pytest.mark.ray
def test_pre_move_study_resumes(tmp_path, shared_ray):
    study = tmp_path / "pre_move"
    shutil.copytree(FIXTURE, study)
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
    elm = next(v for k, v in rows.items() if k.startswith("ELM"))
    ce = next(v for k, v in rows.items() if k.startswith("CE"))
    assert [r["epoch"] for r in elm] == [1, 2]
    assert elm[-1]["resumed_from_epoch"] == 1        # from the pre-move checkpoint
    assert elm[-1]["done"] is True
    assert [r["epoch"] for r in ce] == [1, 2]        # the finished trial is not rerun
    assert (study / "CE_seed0_e9e51_00000" / "result.json").read_text() == (
        FIXTURE / "CE_seed0_e9e51_00000" / "result.json").read_text()
    assert "every trial" not in out.stdout           # it did resume something
