"""Tune's experiment state, kept restorable across a driver killed while Tune writes it.

Tune (2.60, ``TuneController.save_to_dir``) rewrites ``experiment_state-<time>.json`` in place:
it opens the file with "w" and dumps, and its storage sync copies it the same way. A driver
SIGKILLed inside that write leaves the file empty or cut, and ``Tuner.restore`` then restores
no trial: the run's trial list is lost although every trial folder is intact. So the driver
keeps a copy of each state file whenever the file is complete (``keep_copies``, from the study's
progress callback, in the driver thread that also writes the state: never during a write), and
``resume`` puts the copy back where the state no longer parses (``restore_damaged``). The
copies are written atomically (a temporary file, then ``os.replace``)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from trainables.ray_layer.tune_files import STATE_GLOB   # one file per driver session

COPY_SUFFIX = ".last-complete"             # beside it: <state>.json.last-complete


def _complete(path: Path) -> bool:
    """The file parses as Tune's experiment state (a JSON object with its trial list)."""
    try:
        return "trial_data" in json.loads(path.read_text())
    except (OSError, ValueError, TypeError):
        return False


def _experiments(folder: str | Path) -> list[Path]:
    """``folder`` and its run folders (an extension's runs are ``run-N`` inside the study)."""
    from trainables.store.trials import experiment_dirs
    return experiment_dirs(folder)


def _atomic_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.write_bytes(src.read_bytes())
    os.replace(tmp, dst)


def keep_copies(folder: str | Path) -> int:
    """Copy every complete experiment state under ``folder`` (and its runs) that differs from
    its copy; returns how many were copied. Cheap when nothing changed (sizes and mtimes)."""
    copied = 0
    for exp in _experiments(folder):
        for state in exp.glob(STATE_GLOB):
            copy = state.with_name(state.name + COPY_SUFFIX)
            try:
                if copy.exists() and copy.stat().st_mtime_ns >= state.stat().st_mtime_ns:
                    continue
            except OSError:
                continue
            if _complete(state):
                _atomic_copy(state, copy)
                copied += 1
    return copied


def restore_damaged(folder: str | Path) -> list[str]:
    """Put back the last complete copy of every experiment state under ``folder`` that is
    empty, cut or missing; returns the restored files' names (for the console)."""
    restored = []
    for exp in _experiments(folder):
        for copy in exp.glob(STATE_GLOB + COPY_SUFFIX):
            state = copy.with_name(copy.name[:-len(COPY_SUFFIX)])
            if not _complete(state) and _complete(copy):
                _atomic_copy(copy, state)
                restored.append(str(state.relative_to(folder)) if state.is_relative_to(folder)
                                else str(state))
    return restored
