"""Fault hooks for the fault tests: fail a running trial once, in a chosen way.

``ELM_INJECT_FAULT="EPOCH:MARKER_FILE[:kill|:kill-mid]"`` in a trial's environment makes the
trainable (and a Ray Train worker) fail ONCE per marker file after reporting ``EPOCH``: raise;
SIGKILL itself (``:kill``); or SIGKILL itself in the middle of the NEXT epoch, after its first
training step (``:kill-mid``). The tests then check Tune's and Ray Train's retry from the last
checkpoint with the real trainables. No Ray here: the one Ray call goes through the shim.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

FAULT_ENV = "ELM_INJECT_FAULT"


def maybe_inject_fault(epoch: int, trial_id: str = "", trainer=None) -> None:
    """Fail as ``FAULT_ENV`` says, once per marker file (which records ``trial_id``)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    at, marker, *how = spec.split(":")
    if epoch != int(at) or os.path.exists(marker):
        return
    Path(marker).write_text(trial_id)
    if how == ["kill-mid"] and trainer is not None:
        trainer.train_loader = KillAfterOneBatch(trainer.train_loader)
        return
    if how == ["kill"]:
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError(f"injected fault after epoch {epoch} ({FAULT_ENV})")


class KillAfterOneBatch:
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
                wait_until_reports_are_taken()
                os.kill(os.getpid(), signal.SIGKILL)
            yield batch


def wait_until_reports_are_taken(timeout: float = 30.0) -> None:
    """In a Ray Train worker: block until the controller has taken this worker's queued
    reports. Train V2 keeps a report (and registers its checkpoint) only once it has polled
    every worker's copy, every RAY_TRAIN_HEALTH_CHECK_INTERVAL_S (2 s); a worker killed a few
    milliseconds after reporting, as a synthetic epoch allows, loses that checkpoint, which a
    real mid-epoch failure would not. Outside Train (the single-process trainable) a no-op."""
    # imported here: the core imports without Ray, and only a kill-mid fault needs the queue
    from trainables.ray_layer.private import train_result_queue
    queue = train_result_queue()
    if queue is None:
        return
    deadline = time.monotonic() + timeout
    while queue.unfinished_tasks and time.monotonic() < deadline:
        time.sleep(0.05)
