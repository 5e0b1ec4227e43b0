"""Studies as data: YAML study files (shipped ones under ``search_spaces/studies/``) resolved,
with command-line changes, into validated StudySpaces.

    get_space("table1")                       # a shipped study, by name
    get_space("my_sweep.yaml", seeds=[0, 1])  # any file
"""
from __future__ import annotations

from pathlib import Path

from search_spaces.base import StudySpace, expand_grid, grid
from search_spaces.resolve import apply_changes, build_space
from search_spaces.studyfile import (Context, StudyFileError, check_search_settings,
                                     read_study_file)

STUDIES_DIR = Path(__file__).parent / "studies"
SPACES = {p.stem: p for p in sorted(STUDIES_DIR.glob("*.yaml"))}
SEARCH_OPTIONS = ("num_samples", "sampler", "seed")

__all__ = ["SPACES", "StudyFileError", "StudySpace", "expand_grid", "get_space", "grid",
           "list_spaces", "resolve_source"]


def resolve_source(name_or_path: str) -> Path:
    """A shipped study's name, or a path to a study file."""
    p = Path(name_or_path).expanduser()
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise StudyFileError(f"{name_or_path}: no such study file")
        return p
    if name_or_path in SPACES:
        return SPACES[name_or_path]
    raise StudyFileError(f"unknown study '{name_or_path}'; choose one of {sorted(SPACES)} or "
                         f"give a study file (NAME.yaml)")


def get_space(name_or_path: str, *, epochs=None, seeds=None, overrides=None, axes=None,
              max_trials: int | None = None, **options) -> StudySpace:
    """Read a study (by name or file), apply ``--epochs/--seeds/--set/--grid/--option`` and
    build it. ``options``: a search's ``num_samples``/``sampler``/``seed``; a TrialConfig field
    there acts as ``--set`` (the older spelling). Errors are StudyFileErrors naming the key.
    ``max_trials`` (``--max-trials``; None: $ELM_STUDY_MAX_TRIALS or 100,000) bounds the study's
    size, counted before anything is expanded (:mod:`search_spaces.limits`)."""
    path = resolve_source(name_or_path)
    spec = read_study_file(path, max_trials)
    overrides = dict(overrides or {})
    for k, v in options.items():
        if "search" in spec and k in SEARCH_OPTIONS:
            spec["search"][k] = v
        elif k in _config_fields():
            overrides[k] = v
        else:
            valid = list(SEARCH_OPTIONS) if "search" in spec else []
            raise StudyFileError(f"study '{spec['name']}' has no option {k!r}; its options: "
                                 f"{valid + ['any TrialConfig field'] }")
    if "search" in spec:       # what --option changed is checked like the file's own values
        check_search_settings(Context(str(path), max_trials=max_trials).at("--option"),
                              spec["search"])
    spec = apply_changes(spec, epochs=epochs, seeds=seeds, overrides=overrides, axes=axes,
                         source=str(path), max_trials=max_trials)
    return build_space(spec, str(path), max_trials)


def _config_fields() -> set:
    from dataclasses import fields

    from trainables.config import TrialConfig
    return {f.name for f in fields(TrialConfig)}


def list_spaces() -> list[tuple[str, str, int]]:
    """(name, description, trial count) of every shipped study."""
    return [(n, (s := get_space(n)).description, s.expected_trials) for n in SPACES]
