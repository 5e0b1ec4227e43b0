"""The Ray Tune function trainable: one trial = one TrialConfig run by the engine.

It resumes from ``ray.tune.get_checkpoint()`` when Tune restarts it (worker failure, study
resume), reports every epoch with ``ray.tune.report``, and attaches a checkpoint every
``checkpoint_every`` epochs and at the end. Only this module of ``trainables`` knows Ray.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import tempfile
from pathlib import Path

from trainables.config import TrialConfig
from trainables.methods import flatten_trial, method_label
from trainables.provenance import provenance

CHECKPOINT_FILE = "trial.pt"
log = logging.getLogger(__name__)


FAULT_ENV = "ELM_INJECT_FAULT"   # "EPOCH:MARKER_FILE[:kill]", for fault-tolerance tests


class TrialSetupError(RuntimeError):
    """A trial could not start (data missing on this node, bad device...): says where."""


def trial_static_fields(cfg: TrialConfig) -> dict:
    """Fields every report carries, so results are self-describing without params.json."""
    hp = cfg.loss_hparams()
    return {"method": method_label(cfg.loss, cfg.drw, hp.get("lam")),
            **{f"hp_{k}": v for k, v in hp.items()}, "head_used": cfg.resolved_head(),
            "drw_epoch_used": cfg.schedule()["drw_epoch"], **provenance()}


def maybe_inject_fault(epoch: int, trial_id: str = "") -> None:
    """Fail ONCE per marker file after reporting ``epoch`` (raise, or SIGKILL the worker with
    ':kill'). Lets tests exercise Tune's retry-from-checkpoint with the real trainable."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    at, marker, *how = spec.split(":")
    if epoch != int(at) or os.path.exists(marker):
        return
    Path(marker).write_text(trial_id)
    if how == ["kill"]:
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError(f"injected fault after epoch {epoch} ({FAULT_ENV})")


def _node_id() -> str:
    import ray
    try:
        return ray.get_runtime_context().get_node_id()
    except Exception:   # not inside Ray
        return ""


def _trial_dir() -> Path | None:
    from ray import tune
    try:
        d = tune.get_context().get_trial_dir()
    except Exception:   # not inside Tune, or remote storage without a local path
        return None
    return Path(d) if d and "://" not in str(d) and Path(d).is_dir() else None


def _on_disk(trial_dir: Path | None) -> list[Path]:
    return sorted(trial_dir.glob(f"checkpoint_*/{CHECKPOINT_FILE}")) if trial_dir else []


def _reported_epochs(trial_dir: Path | None) -> set:
    """Epochs already in the trial's result.json (written by the driver as results arrive)."""
    import json
    path = trial_dir / "result.json" if trial_dir else None
    if path is None or not path.exists():
        return set()
    epochs = set()
    for line in path.read_text().splitlines():
        try:
            epochs.add(json.loads(line).get("epoch"))
        except json.JSONDecodeError:
            continue
    return epochs


def newest_good_state(paths) -> dict | None:
    """The readable checkpoint with the most epochs among ``paths`` (first wins ties).

    Tune restores the checkpoint its experiment state recorded, which can be older than the
    newest on disk when the driver died between saves; and a truncated or corrupted file must
    fall back to the previous good one rather than crash the study."""
    from trainables.engine import CheckpointError, load_checkpoint
    best = None
    for p in paths:
        try:
            state = load_checkpoint(p)
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
    from trainables.engine import Trainer
    try:
        trainer = Trainer(cfg)              # seeds python/numpy/torch for THIS trial
    except (FileNotFoundError, ValueError, OSError) as e:
        raise TrialSetupError(f"trial could not start on node {socket.gethostname()}: "
                              f"{e}") from None
    static = {**trial_static_fields(cfg), "node_id": _node_id()}
    trial_dir = _trial_dir()
    on_disk = _on_disk(trial_dir)
    checkpoint, tune_epoch = tune.get_checkpoint(), 0
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            known = newest_good_state([Path(d) / CHECKPOINT_FILE])
            tune_epoch = known["epoch"] if known else 0
            state = newest_good_state([Path(d) / CHECKPOINT_FILE, *on_disk])
    else:   # Tune knows none, but a killed driver may have lost track of ones on disk
        state = newest_good_state(on_disk)
    if state is not None:
        trainer.load_state_dict(state)
        if (state["epoch"] > tune_epoch and state.get("last_metrics")
                and state["epoch"] not in _reported_epochs(trial_dir)):
            # saved on disk but its result never reached Tune (the worker died in between):
            # report it now, or that epoch's row would be missing from the results
            _report(tune, trainer, {**state["last_metrics"], **static}, cfg, force=True)
    for m in trainer.epochs():
        _report(tune, trainer, {**m, **static}, cfg)
        maybe_inject_fault(m["epoch"], tune.get_context().get_trial_id())


def _report(tune, trainer, metrics: dict, cfg: TrialConfig, force: bool = False) -> None:
    """Report one epoch; with a checkpoint every ``checkpoint_every`` epochs and at the end."""
    if force or metrics["done"] or metrics["epoch"] % cfg.checkpoint_every == 0:
        with tempfile.TemporaryDirectory() as tmp:
            trainer.save(Path(tmp) / CHECKPOINT_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
    else:
        tune.report(metrics)
