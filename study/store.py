"""Where studies lie: ``<storage>/<name>/`` (a local folder or a pyarrow URI), finding one by
name or path, and refusing storage that cannot be written. What a study folder holds is read
and written by the study store (:mod:`trainables.store`: ``study.json`` as a StudyRecord, its
trials as TrialRecords).
"""
from __future__ import annotations

from pathlib import Path

from trainables.store import STUDY_FILE, StudyError, has_study_file  # noqa: F401 (StudyError: study's)


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
        if has_study_file(cand):
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
