"""A study on disk: ``<storage>/<name>/`` as Ray Tune lays it out, plus our ``study.json``.

``study.json`` records what was launched (space, options, overrides, resources) so that
``resume`` can rebuild the same trainable and ``status`` can say how far along it is, both
without the original command line.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from trainables.results import STUDY_FILE


class StudyError(ValueError):
    """Bad study input (name clash, unwritable storage...): exit code 2, nothing launched."""


def storage_root(storage: str) -> str:
    """An absolute local path or a pyarrow URI (s3://, gs://...) as Ray wants it."""
    return storage if "://" in storage else str(Path(storage).expanduser().resolve())


def is_remote(storage: str) -> bool:
    return "://" in storage


def study_dir(storage: str, name: str) -> str:
    root = storage_root(storage)
    return f"{root.rstrip('/')}/{name}" if is_remote(root) else str(Path(root) / name)


def locate(name_or_path: str, storage: str) -> Path:
    """A study given by folder path or by name under ``storage``; clear error if absent."""
    p = Path(name_or_path).expanduser()
    for cand in (p, Path(storage_root(storage)) / name_or_path):
        if (cand / STUDY_FILE).exists():
            return cand.resolve()
    raise StudyError(f"no study at '{name_or_path}' (looked for {STUDY_FILE} in {p} and under "
                     f"--storage {storage_root(storage)})")


def check_writable(root: str, *, create: bool = True) -> None:
    """Refuse early (exit 2) when local storage cannot be created or written. Without
    ``create`` (a dry run) nothing is made: the nearest existing folder must be writable."""
    if is_remote(root):
        return
    from trainables.cli import folder_problem
    problem = folder_problem(root, create=create)
    if problem and not create:
        raise StudyError(f"--storage {root} is not writable ({problem[0]}: {problem[1]})")
    if problem:
        raise StudyError(f"--storage {root} is not writable ({problem[1]})")


def read_meta(path: Path) -> dict:
    """A study's study.json; one StudyError line naming it when it cannot be read (torn,
    truncated, garbled): nothing can be done to a study without its record of its runs, and
    nothing is changed."""
    where = Path(path) / STUDY_FILE
    try:
        meta = json.loads(where.read_text())
    except OSError as e:
        raise StudyError(f"cannot read {where}: {e.strerror or e}") from None
    except ValueError as e:   # JSONDecodeError, or bytes that are not UTF-8
        raise StudyError(f"{where} is damaged (not valid JSON: {e}); it is the study's "
                         "record of its runs, written whole or not at all, so this is a copy "
                         "cut short or edited: restore it (nothing was changed)") from None
    if not isinstance(meta, dict):
        raise StudyError(f"{where} is damaged (it holds {json.dumps(meta)[:40]}, not a study's "
                         "record); restore it (nothing was changed)")
    return meta


def write_meta(path: Path, meta: dict) -> None:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / (STUDY_FILE + ".tmp")
    tmp.write_text(json.dumps({**meta, "written_at": time.strftime("%Y-%m-%dT%H:%M:%S")},
                              indent=1, allow_nan=False))   # strict JSON: jq / JS read it
    os.replace(tmp, path / STUDY_FILE)
