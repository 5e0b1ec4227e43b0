"""A study folder read once: :class:`StudyFolder` reads each of its files the first time a
reader asks for it and keeps what it read, so building a report (tables, curves, derived rows,
runs, diagnostics) reads every result.json once and names each damaged file once.
"""
from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

from trainables.results import POSTHOC_FILE, note_damage
from trainables.store.records import StudyError, StudyRecord, TrialRecord
from trainables.store.study_file import STUDY_FILE, has_study_file, read_study
from trainables.store.trials import decoupled_runs, one_per_key, study_trials


class StudyFolder:
    """One study folder. ``damage``: the list every damaged file is named in (None: stderr)."""

    def __init__(self, path: str | Path, damage: list | None = None):
        self.path, self.damage = Path(path), damage

    @classmethod
    def of(cls, source: str | Path | StudyFolder, damage: list | None = None) -> StudyFolder:
        """``source`` itself when it is a StudyFolder (already read: read nothing again), else
        the folder at that path."""
        return source if isinstance(source, StudyFolder) else cls(source, damage)

    @property
    def name(self) -> str:
        return self.path.name

    @cached_property
    def record(self) -> StudyRecord | None:
        """study.json (None: there is none, or it is damaged, which is named)."""
        if not has_study_file(self.path):
            return None
        try:
            return read_study(self.path)
        except StudyError as e:
            note_damage(self.damage, self.path / STUDY_FILE, f"{e}; no runs listed")
            return None

    @cached_property
    def trials(self) -> list[TrialRecord]:
        """Every trial folder of every run (a key retried or launched again: each)."""
        return study_trials(self.path, self.damage)

    @cached_property
    def trials_per_key(self) -> list[TrialRecord]:
        """One trial per key (:func:`trainables.store.trials.one_per_key`)."""
        return one_per_key(self.trials)

    @cached_property
    def decoupled(self) -> list[tuple[Path, list[dict]]]:
        """The finished decoupled (cRT/LWS) runs: (folder, rows)."""
        return decoupled_runs(self.path, self.damage)

    @cached_property
    def posthoc(self) -> list[dict]:
        """posthoc.json's rows (analysis.posthoc writes them); [] if none or unreadable."""
        where = self.path / POSTHOC_FILE
        try:
            data = json.loads(where.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as e:
            note_damage(self.damage, where, f"not readable JSON "
                        f"({getattr(e, 'strerror', None) or e}); post-hoc rows skipped")
            return []
        if not isinstance(data, list):
            note_damage(self.damage, where, f"holds a {type(data).__name__}, not a list; "
                        "post-hoc rows skipped")
            return []
        return data
