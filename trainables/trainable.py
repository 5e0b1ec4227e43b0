"""The Ray Tune function trainable: one trial = one TrialConfig run by the engine.

It resumes from ``ray.tune.get_checkpoint()`` when Tune restarts it (worker failure, study
resume), reports every epoch with ``ray.tune.report``, and attaches a checkpoint every
``checkpoint_every`` epochs and at the end. Only this module of ``trainables`` knows Ray.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import tempfile
from pathlib import Path

from trainables.config import TrialConfig
from trainables.jsonio import finite_or_none
from trainables.methods import flatten_trial, method_label
from trainables.provenance import provenance
from trainables.ray_metrics import trial_gauges

CHECKPOINT_FILE = "trial.pt"
CONFUSION_FILE = "confusion.json"   # {split: rows = true class, columns = predicted}
log = logging.getLogger(__name__)


FAULT_ENV = "ELM_INJECT_FAULT"   # "EPOCH:MARKER_FILE[:kill|:kill-mid]", for fault tests


class TrialSetupError(RuntimeError):
    """A trial could not start (data missing on this node, bad device...): says where."""


def trial_static_fields(cfg: TrialConfig) -> dict:
    """Fields every report carries, so results are self-describing without params.json."""
    hp = cfg.loss_hparams()
    return {"method": method_label(cfg.loss, cfg.drw, hp.get("lam")),
            "trial_key": cfg.trial_key(),   # what studies de-duplicate and extend by
            **{f"hp_{k}": v for k, v in hp.items()}, "head_used": cfg.resolved_head(),
            "drw_epoch_used": cfg.schedule()["drw_epoch"], **provenance()}


def maybe_inject_fault(epoch: int, trial_id: str = "", trainer=None) -> None:
    """Fail ONCE per marker file after reporting ``epoch``: raise; SIGKILL the worker (':kill');
    or SIGKILL it in the middle of the NEXT epoch, after its first training step ('kill-mid').
    Lets tests exercise Tune's retry-from-checkpoint with the real trainable."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    at, marker, *how = spec.split(":")
    if epoch != int(at) or os.path.exists(marker):
        return
    Path(marker).write_text(trial_id)
    if how == ["kill-mid"] and trainer is not None:
        trainer.train_loader = _KillAfterOneBatch(trainer.train_loader)
        return
    if how == ["kill"]:
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError(f"injected fault after epoch {epoch} ({FAULT_ENV})")


class _KillAfterOneBatch:
    """Wraps a train loader: the worker dies while fetching the epoch's second batch."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def __len__(self):
        return len(self._loader)

    def __iter__(self):
        for i, batch in enumerate(self._loader):
            if i == 1:
                _wait_until_reports_are_taken()
                os.kill(os.getpid(), signal.SIGKILL)
            yield batch


def _wait_until_reports_are_taken(timeout: float = 30.0) -> None:
    """In a Ray Train worker: block until the controller has taken this worker's queued
    reports. Train V2 keeps a report (and registers its checkpoint) only once it has polled
    every worker's copy, every RAY_TRAIN_HEALTH_CHECK_INTERVAL_S (2 s); a worker killed a few
    milliseconds after reporting, as a synthetic epoch allows, loses that checkpoint, which a
    real mid-epoch failure would not. Outside Train (the single-process trainable) a no-op."""
    import time
    try:
        from ray.train.v2._internal.execution.context import get_train_context
        queue = get_train_context().get_result_queue()
    except Exception:      # not in a Ray Train worker, or a Ray without this internal API
        return
    deadline = time.monotonic() + timeout
    while queue.unfinished_tasks and time.monotonic() < deadline:
        time.sleep(0.05)


def _node_id() -> str:
    import ray
    try:
        return ray.get_runtime_context().get_node_id()
    except Exception:   # not inside Ray
        return ""


def _trial_storage():
    """(pyarrow filesystem, trial path) of this trial's directory in the study's storage, or
    None outside Tune. Checkpoints live there, and the result.json that Tune copies back over
    the driver's staging copy when it restarts a trial: so that copy, not the staging one, says
    which epochs' rows survive a restart (Ray 2.60 has no public API for this path)."""
    try:
        from ray.train._internal.session import get_storage
        storage = get_storage()
        return storage.storage_filesystem, storage.trial_fs_path
    except Exception:   # not inside Tune, or Ray moved the private API
        return None


def _on_disk(where) -> list:
    """Checkpoint files under the trial's storage directory, oldest first."""
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


def _reported_epochs(where) -> set | None:
    """Epochs in the trial's stored result.json; None when it cannot be read."""
    from trainables.results import parse_json_lines
    if where is None:
        return None
    fs, path = where
    try:
        with fs.open_input_stream(f"{path}/result.json") as f:
            text = f.read().decode()
    except FileNotFoundError:
        return set()
    except OSError:
        return None
    return {row.get("epoch") for row in parse_json_lines(text)}


def _load_any(src) -> dict:
    """Load a local path, or a (filesystem, path) pair through a local temporary copy."""
    from trainables.engine import CheckpointError, load_checkpoint
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


def newest_good_state(paths) -> dict | None:
    """The readable checkpoint with the most epochs among ``paths`` (first wins ties).

    Tune restores the checkpoint its experiment state recorded, which can be older than the
    newest on disk when the driver died between saves; and a truncated or corrupted file must
    fall back to the previous good one rather than crash the study."""
    from trainables.engine import CheckpointError
    best = None
    for p in paths:
        try:
            state = _load_any(p)
        except CheckpointError as e:
            log.warning("skipping checkpoint: %s", e)
            continue
        if best is None or state["epoch"] > best["epoch"]:
            best = state
    return best


def train_trial(config: dict) -> None:
    """Tune entry point. ``config`` follows the search-space convention (base/method/axes)."""
    from ray import tune

    cfg = TrialConfig.from_dict(flatten_trial(config))
    if cfg.workers_per_trial > 1:   # a Ray Train data-parallel run (trainables.distributed)
        from trainables.distributed import train_trial_distributed
        return train_trial_distributed(config)
    from trainables.engine import Trainer
    if cfg.decouple:   # the second stage of cRT / LWS, from the trial cfg.stage1 names
        from trainables.decoupled import DecoupledTrainer as Trainer
    try:
        trainer = Trainer(cfg)              # seeds python/numpy/torch for THIS trial
    except (FileNotFoundError, ValueError, OSError) as e:
        raise TrialSetupError(f"trial could not start on node {socket.gethostname()}: "
                              f"{e}") from None
    static = {**trial_static_fields(cfg), "node_id": _node_id(),
              **getattr(trainer, "static_fields", {})}   # a decoupled trial's own label
    where = _trial_storage()
    checkpoint, known = tune.get_checkpoint(), None
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            known = newest_good_state([Path(d) / CHECKPOINT_FILE])
    tune_epoch = known["epoch"] if known else 0
    # a killed driver may have lost track of newer checkpoints on disk (Tune's wins ties)
    on_disk = newest_good_state(_on_disk(where))
    state = on_disk if on_disk and on_disk["epoch"] > tune_epoch else known
    static["resumed_from_epoch"] = state["epoch"] if state else 0   # shows retries in rows
    if state is not None:
        trainer.load_state_dict(state)
        _report_lost_epochs(tune, trainer, state, tune_epoch, _reported_epochs(where), static,
                            cfg)
    gauges = trial_gauges(cfg, static["method"])   # the dashboard's per-trial metrics
    for m in trainer.epochs():
        if gauges is not None:
            gauges.update(m)
        _report(tune, trainer, {**m, **static}, cfg)
        maybe_inject_fault(m["epoch"], tune.get_context().get_trial_id(), trainer)


def _report_lost_epochs(tune, trainer, state, tune_epoch, stored, static, cfg) -> None:
    """Re-report epochs the restored checkpoint trained whose rows are not in the stored
    result.json: a worker killed after reporting, or a driver killed before syncing, loses
    them (Tune restores result.json from storage on restart), and a study must not have
    holes in its curves. The restored epoch's row carries a checkpoint, as the original did."""
    history = state.get("history") or ([state["last_metrics"]] if state.get("last_metrics")
                                       else [])
    if stored is None:   # storage unreadable: only what Tune cannot know about
        lost = [h for h in history if h.get("epoch", 0) > tune_epoch]
    else:
        lost = [h for h in history if h.get("epoch") not in stored]
    for h in lost:
        _report(tune, trainer, {**h, **static}, cfg, force=h.get("epoch") == state["epoch"])


def _report(tune, trainer, metrics: dict, cfg: TrialConfig, force: bool = False) -> None:
    """Report one epoch; with a checkpoint every ``checkpoint_every`` epochs and at the end."""
    metrics = finite_or_none(metrics)    # result.json must be strict JSON: NaN -> null
    if force or cfg.checkpoint_due(metrics):
        with tempfile.TemporaryDirectory() as tmp:
            trainer.save(Path(tmp) / CHECKPOINT_FILE)
            if metrics["done"] and trainer.confusion:   # the final one, beside the weights
                (Path(tmp) / CONFUSION_FILE).write_text(json.dumps(trainer.confusion))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
    else:
        tune.report(metrics)
