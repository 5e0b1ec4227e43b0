"""What Ray Tune (2.60) writes into a study folder, read without Ray: its trial folder names
and its experiment state. The study store (:mod:`trainables.store.trials`) asks here; nothing
else parses Tune's files (``tune_state.py`` copies them whole).

- A Tune trial id is ``<experiment>_<index>`` (five hex digits, five decimal digits); the
  study names each trial folder ``<method>_<seed>_<trial id>`` (study.launcher.trial_dirname),
  Tune's own default ``<trainable>_<experiment>_<index>_<n>_<config>_<time>``: either way the
  id is in the name, and its index is the trial's place in its experiment's launch order.
- ``experiment_state-<time>.json``: one per driver session; its ``trial_data`` lists every
  trial (a JSON-encoded trial, then its runtime state) with its ``status``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

STATE_GLOB = "experiment_state-*.json"
TRIAL_ID = re.compile(r"_([0-9a-f]{5})_(\d{5})(?:_|$)")   # '_<experiment>_<index>' in a name


def trial_id_in(name: str) -> str | None:
    """The Tune trial id a trial folder's name holds (its first), or None."""
    found = TRIAL_ID.search(name)
    return f"{found.group(1)}_{found.group(2)}" if found else None


def launch_order(folder: Path) -> tuple:
    """A trial folder's place in its experiment: Tune's trial index (the study file's order of
    methods and seeds), whatever the folder's name says before it."""
    found = TRIAL_ID.findall(folder.name)
    return (0, int(found[-1][1]), folder.name) if found else (1, 0, folder.name)


def looks_like_trial_folder(folder: Path) -> bool:
    """Named as Tune names trials (it may not have written its params.json yet)."""
    return folder.is_dir() and TRIAL_ID.search(folder.name) is not None


def statuses(experiment: str | Path) -> dict[str, str]:
    """trial_id -> Tune's status (TERMINATED, ERROR, RUNNING, PENDING...) from the newest
    experiment state Tune wrote in one experiment folder ({} if there is none)."""
    # newest by the timestamp in the name (Tune's own rule): every driver session writes its
    # own file, and the final sync re-copies older ones, so mtimes do not order them
    for path in reversed(sorted(Path(experiment).glob(STATE_GLOB))):
        try:
            data = json.loads(path.read_text())
            out = {}
            for entry in data.get("trial_data", []):
                trial = json.loads(entry[0]) if isinstance(entry[0], str) else entry[0]
                out[trial["trial_id"]] = trial.get("status")
            return out
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            continue   # torn by a killed driver: try the previous one
    return {}


def has_error_file(trial_dir: Path) -> bool:
    """Tune wrote the trial's error (its last failure) into its folder."""
    return (trial_dir / "error.txt").exists() or (trial_dir / "error.pkl").exists()
