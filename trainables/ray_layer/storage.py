"""A Tune trial's own storage: its checkpoints there, the epochs it already reported, and
which epochs a restart lost.

Checkpoints live in the trial's folder in the study's storage (a local path, NFS or
``s3://``/``gs://`` through pyarrow), and so does the result.json that Tune copies back over
the driver's staging copy when it restarts a trial: that copy, not the staging one, says which
epochs' rows survive a restart. The folder comes from the shim (Ray 2.60 has no public API).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from trainables.checkpoints import CHECKPOINT_FILE, CheckpointError, load_checkpoint, newest_good
from trainables.ray_layer.private import trial_storage
from trainables.results import cost_totals, parse_json_lines


def checkpoints_on_storage(where) -> list:
    """(filesystem, path) of every checkpoint file in the trial's storage folder, oldest
    first; ``where`` is private.trial_storage()'s (filesystem, trial path) or None."""
    if where is None:
        return []
    import pyarrow.fs as pafs
    fs, path = where
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except OSError:
        return []
    dirs = sorted(i.path for i in infos
                  if i.type == pafs.FileType.Directory and i.base_name.startswith("checkpoint_"))
    return [(fs, f"{d}/{CHECKPOINT_FILE}") for d in dirs]


def reported_epochs(where) -> set | None:
    """Epochs in the trial's stored result.json; None when there is none or it cannot be read.

    No file is not "no rows": the driver syncs its staging result.json to storage in the
    background, so a trial killed seconds after it started may have none there yet, and then
    Tune keeps the driver's own copy, which holds every row the driver received."""
    rows = reported_rows(where)
    return None if rows is None else {row.get("epoch") for row in rows}


def reported_rows(where) -> list[dict] | None:
    """The rows of the trial's stored result.json; None as :func:`reported_epochs`."""
    if where is None:
        return None
    fs, path = where
    try:
        with fs.open_input_stream(f"{path}/result.json") as f:
            text = f.read().decode()
    except OSError:       # FileNotFoundError included: see reported_epochs
        return None
    return parse_json_lines(text)


def load_any(src) -> dict:
    """Load a local path, or a (filesystem, path) pair through a local temporary copy."""
    if not isinstance(src, tuple):
        return load_checkpoint(src)
    fs, path = src
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / CHECKPOINT_FILE
        try:
            with fs.open_input_stream(path) as f:
                local.write_bytes(f.read())
        except OSError as e:
            raise CheckpointError(f"checkpoint {path} is unreadable ({e})") from e
        return load_checkpoint(local)


def state_of(checkpoint) -> dict | None:
    """The trial state in a ``ray.tune``/``ray.train`` Checkpoint (None: none, or unreadable)."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as d:
        return newest_good([Path(d) / CHECKPOINT_FILE])


class TrialStorage:
    """The running Tune trial's storage folder (or none, outside Tune)."""

    def __init__(self, where="unset"):
        self.where = trial_storage() if where == "unset" else where

    def restore(self, checkpoint) -> tuple[dict | None, int]:
        """(state to resume from or None, the epoch of the checkpoint Tune restored).

        A killed driver may have lost track of newer checkpoints on disk than the one its
        experiment state recorded: the newest good one on storage wins; Tune's wins ties."""
        known = state_of(checkpoint)
        tune_epoch = known["epoch"] if known else 0
        on_disk = newest_good(checkpoints_on_storage(self.where), load=load_any)
        state = on_disk if on_disk and on_disk["epoch"] > tune_epoch else known
        return state, tune_epoch

    def earlier_cost(self) -> dict:
        """What the trial's earlier attempts cost, from its stored rows (rows reported after
        the checkpoint a retry restores count too): trainables.results.cost_totals."""
        return cost_totals(reported_rows(self.where) or [])

    def lost_epochs(self, state: dict, tune_epoch: int) -> list[dict]:
        """Rows of epochs the restored checkpoint trained that are not in the stored
        result.json: a worker killed after reporting, or a driver killed before syncing,
        loses them (Tune restores result.json from storage on restart), and a study must not
        have holes in its curves."""
        history = state.get("history") or ([state["last_metrics"]]
                                           if state.get("last_metrics") else [])
        stored = reported_epochs(self.where)
        if stored is None:   # no stored copy to judge by: only what Tune cannot know about
            return [h for h in history if h.get("epoch", 0) > tune_epoch]
        return [h for h in history if h.get("epoch") not in stored]
