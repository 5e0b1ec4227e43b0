"""``study.json``: the one reader and writer of a study's record of its runs.

Written whole or not at all (a temporary file, then ``os.replace``), as strict JSON (jq and
JavaScript read it); read into a :class:`~trainables.store.records.StudyRecord`, or refused
with one StudyError line naming the file when it cannot be (nothing can be done to a study
without its record of its runs, and nothing is changed).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from trainables.store.records import StudyError, StudyRecord

STUDY_FILE = "study.json"


def has_study_file(folder: str | Path) -> bool:
    return (Path(folder) / STUDY_FILE).is_file()


def read_study(folder: str | Path) -> StudyRecord:
    """The study's record; a StudyError naming the file when it is missing or damaged."""
    where = Path(folder) / STUDY_FILE
    try:
        data = json.loads(where.read_text())
    except OSError as e:
        raise StudyError(f"cannot read {where}: {e.strerror or e}") from None
    except ValueError as e:   # JSONDecodeError, or bytes that are not UTF-8
        raise StudyError(f"{where} is damaged (not valid JSON: {e}); it is the study's "
                         "record of its runs, written whole or not at all, so this is a copy "
                         "cut short or edited: restore it (nothing was changed)") from None
    if not isinstance(data, dict):
        raise StudyError(f"{where} is damaged (it holds {json.dumps(data)[:40]}, not a study's "
                         "record); restore it (nothing was changed)")
    try:
        return StudyRecord.from_json(data)
    except (TypeError, ValueError, AttributeError) as e:
        raise StudyError(f"{where} is damaged (a field has the wrong kind of value: {e}); "
                         "restore it (nothing was changed)") from None


def write_study(folder: str | Path, study: StudyRecord) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (STUDY_FILE + ".tmp")
    tmp.write_text(json.dumps({**study.to_json(),
                               "written_at": time.strftime("%Y-%m-%dT%H:%M:%S")},
                              indent=1, allow_nan=False))
    os.replace(tmp, folder / STUDY_FILE)
