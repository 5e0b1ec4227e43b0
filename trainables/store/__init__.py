"""The study store: the one reader and writer of a study folder, as typed records.

A study folder (``<storage>/<name>/``) is what ``elm-study`` launched and everything its trials
wrote; this package is the only code that reads it (and writes ``study.json``):

- ``records``     the types: StudyRecord (study.json) with its RunRecords, RunOptions and
                  Resources; TrialRecord (one trial folder: key, config, status, rows,
                  checkpoints, PackMembership); ``trial_status``, THE rule for a trial's
                  status; StudyError.
- ``study_file``  study.json: ``read_study`` -> StudyRecord, ``write_study`` (whole or not at all).
- ``trials``      the trial folders of every run: ``study_trials`` -> [TrialRecord], one per
                  key (``one_per_key``), rows (``read_results``), decoupled runs.
- ``folder``      StudyFolder: a study folder read once (its record, trials, decoupled runs,
                  post-hoc rows), what a report reads everything through.

What Ray Tune writes is parsed in the Ray layer (``trainables/ray_layer/tune_files.py``: trial
folder names, experiment state; ``tune_state.py``: its copies); the trials a pack trains are
written by ``ray_layer/pack_storage.py`` in the layout of an unpacked trial, so they read here as
any trial. Nothing here imports Ray, pandas or torch (a study reads on a laptop). ``study``
(status, resume, extension, progress lines, loggers) and ``analysis`` (the report) read
through it: docs/architecture.md walks one study through these types.
"""
from trainables.store.records import (FINISHED, PackMembership, Resources, RunOptions,
                                      RunRecord, StudyError, StudyRecord, TrialRecord,
                                      trial_status)
from trainables.store.folder import StudyFolder
from trainables.store.study_file import STUDY_FILE, has_study_file, read_study, write_study
from trainables.store.trials import (decoupled_runs, experiment_dirs, one_per_key,
                                     read_results, study_trials, trial_dirs)

__all__ = ["FINISHED", "PackMembership", "Resources", "RunOptions", "RunRecord", "StudyError",
           "StudyFolder", "StudyRecord", "TrialRecord", "trial_status", "STUDY_FILE", "has_study_file",
           "read_study", "write_study", "decoupled_runs", "experiment_dirs", "one_per_key",
           "read_results", "study_trials", "trial_dirs"]
