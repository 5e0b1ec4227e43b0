"""Checkpoints: THE module every writer and reader of a trial's checkpoint goes through.

File names, the atomic save, the safe load (``weights_only=True``), the check that a state
belongs to a config, "the newest good checkpoint" (of a list, of a folder), and the one sink
that turns an epoch's metrics into a row and, when due, a checkpoint:

    write_epoch(trainer, metrics, cfg, emit)   # emit(strict metrics, checkpoint folder|None)

The writers differ only in their ``emit``: the Tune trainable (``tune.report``), the Ray Train
worker (``ray.train.report``; rank 0 writes, every rank emits), ``python -m trainables.run``
(metrics.jsonl + last.pt) and the decoupled stage (result.json + trial.pt). No Ray here.
"""
from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from trainables.config import TrialConfig
from trainables.jsonio import finite_or_none

CHECKPOINT_FORMAT = 1
CHECKPOINT_FILE = "trial.pt"          # a trial's checkpoint (Tune, Ray Train, decoupled)
CONFUSION_FILE = "confusion.json"     # {split: rows = true class, columns = predicted}
# classes: above this the final confusion matrix is not written (iNaturalist 2018's 8,142
# classes make a 199 MB file per trial; ImageNet-LT's 1,000 about 3 MB)
CONFUSION_FILE_MAX = 1000
LAST_FILE = "last.pt"                 # python -m trainables.run --out DIR: DIR/last.pt
TRAIN_RUN_DIR = "train"               # a data-parallel trial's Ray Train run, in its folder
# where a folder keeps its checkpoints, most specific first: a Tune trial's checkpoint_NNNNNN/,
# a data-parallel trial's Train run, a decoupled run's own file, a trainables.run folder
_FOLDER_PATTERNS = (f"checkpoint_*/{CHECKPOINT_FILE}",
                    f"{TRAIN_RUN_DIR}/checkpoint_*/{CHECKPOINT_FILE}", CHECKPOINT_FILE, LAST_FILE)
# fields that may differ between the run that saved and the run that resumes
_RESUME_MAY_CHANGE = ("device", "data_root", "download", "compile", "channels_last",
                      "checkpoint_every", "extra", "num_workers", "gpu_decode", "train_list",
                      "val_list", "test_list", "workers_per_trial")
log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupted or from another trial."""


# =========================================================================================
# one file
# =========================================================================================
def save_checkpoint(state: dict, path) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, then
    ``os.replace``, so a crash (or a reader) never sees a half-written checkpoint."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path) -> dict:
    """Load a checkpoint safely (weights_only=True); a clear CheckpointError if it is bad."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise CheckpointError(f"checkpoint {path} does not exist") from e
    except Exception as e:   # truncated zip, bad pickle, disallowed type...
        # torch's weights_only errors are pages of advice around one line of cause
        cause = re.search(r"WeightsUnpickler error:\s*([^\n]+)", str(e))
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(e).__name__}: "
                              f"{cause.group(1) if cause else e})") from e
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"checkpoint {path} holds no trial state")
    return state


def check_checkpoint(state: dict, cfg: TrialConfig) -> None:
    """CheckpointError unless ``state`` has this format and ``cfg``'s config up to runtime
    fields (a CLI checks this before building anything); the message names each field that
    differs, this run's value first."""
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint format {state.get('format')!r} is not "
                              f"{CHECKPOINT_FORMAT}")
    try:
        saved = TrialConfig.from_dict(state["config"]).replace(
            **{k: getattr(cfg, k) for k in _RESUME_MAY_CHANGE})
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint holds no valid trial config ({e})") from e
    if saved != cfg:
        old = saved.to_dict()
        diff = [f"{k}={v!r} here, {old[k]!r} in the checkpoint"
                for k, v in cfg.to_dict().items() if old[k] != v]
        raise CheckpointError("checkpoint belongs to a different trial config: " +
                              "; ".join(diff))


# =========================================================================================
# the newest good one
# =========================================================================================
def newest_good(paths: Iterable, load: Callable[..., dict] = load_checkpoint) -> dict | None:
    """The readable checkpoint with the most epochs among ``paths`` (first wins ties), or None.

    Tune restores the checkpoint its experiment state recorded, which can be older than the
    newest on disk when the driver died between saves; and a truncated or corrupted file must
    fall back to the previous good one rather than crash the study. ``load`` reads one entry
    of ``paths`` (the Ray layer passes one that reads the trial's storage filesystem)."""
    best = None
    for p in paths:
        try:
            state = load(p)
        except CheckpointError as e:
            log.warning("skipping checkpoint: %s", e)
            continue
        if best is None or state["epoch"] > best["epoch"]:
            best = state
    return best


def checkpoints_in(folder) -> list[Path]:
    """The checkpoint files of a trial (or run) folder, oldest first: Tune's
    ``checkpoint_NNNNNN/trial.pt`` (zero-padded, so name order is save order), a data-parallel
    trial's ``train/checkpoint_*/trial.pt``, a decoupled run's ``trial.pt``, a ``last.pt``."""
    for pattern in _FOLDER_PATTERNS:
        found = sorted(Path(folder).glob(pattern))
        if found:
            return found
    return []


def newest_in(folder) -> Path | None:
    """The newest checkpoint file in ``folder`` (see :func:`checkpoints_in`), or None."""
    found = checkpoints_in(folder)
    return found[-1] if found else None


def newest_good_in(folder) -> tuple[Path, dict] | None:
    """(path, state) of the newest READABLE checkpoint in ``folder``, or None: a truncated or
    corrupted newest file falls back to the one before, with a warning naming it."""
    for path in reversed(checkpoints_in(folder)):
        try:
            return path, load_checkpoint(path)
        except CheckpointError as e:
            log.warning("skipping checkpoint: %s", e)
    return None


# =========================================================================================
# THE sink
# =========================================================================================
Emit = Callable[[dict, "Path | None"], None]


def write_epoch(trainer, metrics: dict, cfg: TrialConfig, emit: Emit, force: bool = False, *,
                folder=None, name: str = CHECKPOINT_FILE) -> dict:
    """Turn one epoch's metrics into a row and, when due, a checkpoint; returns the row.

    The row is strict JSON (NaN/inf -> None: result files are RFC 8259). A checkpoint is due
    every ``checkpoint_every`` epochs, at the end, or when ``force`` (a re-reported epoch that
    originally carried one); the final confusion matrix is written beside the last one. Then
    ``emit(row, checkpoint folder or None)`` hands both to the writer. ``folder``: where the
    checkpoint goes (as ``name``); None writes it to a temporary folder that lives until emit
    returns (Tune and Ray Train copy it to the trial's storage). In a data-parallel worker only
    rank 0 writes; every rank emits (Ray Train's report is a barrier)."""
    row = finite_or_none(metrics)
    dist = getattr(trainer, "dist", None)
    if not (force or cfg.checkpoint_due(row)) or (dist is not None and dist.rank != 0):
        emit(row, None)
        return row
    if folder is not None:
        _write_checkpoint(trainer, row, Path(folder), name)
        emit(row, Path(folder))
        return row
    with tempfile.TemporaryDirectory() as tmp:
        _write_checkpoint(trainer, row, Path(tmp), name)
        emit(row, Path(tmp))
    return row


def _write_checkpoint(trainer, row: dict, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    trainer.save(folder / name)
    if row["done"] and trainer.confusion and \
            len(next(iter(trainer.confusion.values()))) <= CONFUSION_FILE_MAX:   # the final one
        (folder / CONFUSION_FILE).write_text(json.dumps(trainer.confusion))
