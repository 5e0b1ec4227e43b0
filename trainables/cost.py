"""What a trial cost: its device-seconds, over every attempt (retries and resumes included).

Device-seconds are wall seconds × the share of a device the trial held: a GPU trial's
fraction of a GPU (``--gpus-per-trial 0.25``: a quarter), a CPU-only trial's CPUs (counted in
CPU-seconds, never mixed with GPU-seconds), a pack member's even share of its pack's
resources, a data-parallel trial's workers together. Outside Ray a trial holds one whole GPU,
or on CPU as many CPUs as torch's threads. The meter runs from the Trainer's construction
(data and model building included) to each epoch's end; what a writer does after the last
epoch (its final checkpoint) and the part of an epoch a crash cuts short are not counted.

The totals live in the trial's checkpoint (``state_dict``), so a restored trial goes on from
its earlier attempts' sum. Rows carry them cumulatively (``cost_wall_s``, ``cost_cpu_s``,
``cost_gpu_s``, ``cost_attempts``) with this attempt's holding (``cost_kind`` cpu/gpu,
``cost_share``, ``cost_device``); a study reads a trial's cost from its rows
(trainables.results.cost_totals; docs/cost.md). No Ray here: the Ray layer tells the meter
what the trial holds (``hold``).
"""
from __future__ import annotations

import time

import torch

KINDS = ("cpu", "gpu")


def device_name(device) -> str:
    """'cpu', or the GPU's model ('NVIDIA H100 80GB HBM3')."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    return device.type


def default_hold(device) -> tuple[str, float]:
    """Outside Ray: a CUDA trial holds one GPU; any other, torch's threads as CPUs."""
    if torch.device(device).type == "cuda":
        return "gpu", 1.0
    return "cpu", float(torch.get_num_threads())


def hold_of(resources: dict, device, members: int = 1, workers: int = 1) -> tuple[str, float]:
    """(kind, share) from Ray's resources of a trial ({'CPU': c, 'GPU': g}, either case): a
    GPU trial's GPUs, else its CPUs; split evenly among a pack's ``members``, multiplied by a
    data-parallel trial's ``workers`` (``resources`` are then one worker's)."""
    res = {str(k).lower(): float(v) for k, v in (resources or {}).items()}
    on_gpu = torch.device(device).type == "cuda" and res.get("gpu", 0) > 0
    kind = "gpu" if on_gpu else "cpu"
    amount = res.get(kind, 0.0) or default_hold(device)[1]
    return kind, amount * workers / max(members, 1)


class CostMeter:
    """Wall time and device-seconds of one trial (module docstring)."""

    def __init__(self, device, start: float | None = None):
        """``start``: a ``time.monotonic()`` the meter counts from (default: now)."""
        self._mark = time.monotonic() if start is None else start
        self.kind, self.share = default_hold(device)
        self.device = device_name(device)
        self.now = {"wall": 0.0, "cpu": 0.0, "gpu": 0.0}      # this attempt
        self.before = {"wall": 0.0, "cpu": 0.0, "gpu": 0.0}   # earlier attempts
        self.attempts_before = 0

    def hold(self, kind: str, share: float) -> None:
        """What the trial holds from now on (the Ray layer's resources; a pack's share)."""
        if kind not in KINDS:
            raise ValueError(f"cost kind {kind!r} is not one of {list(KINDS)}")
        self.kind, self.share = kind, float(share)

    def tick(self) -> dict:
        """Count the time since the last tick (or the meter's start) at the current holding;
        returns the row fields."""
        now = time.monotonic()
        dt, self._mark = now - self._mark, now
        self.now["wall"] += dt
        self.now[self.kind] += dt * self.share
        return self.fields()

    def fields(self) -> dict:
        total = {k: self.before[k] + self.now[k] for k in self.now}
        return {"cost_wall_s": total["wall"], "cost_cpu_s": total["cpu"],
                "cost_gpu_s": total["gpu"], "cost_attempts": self.attempts_before + 1,
                "cost_kind": self.kind, "cost_share": self.share, "cost_device": self.device}

    def state_dict(self) -> dict:
        """The totals so far (plain floats: a checkpoint's ``cost``)."""
        f = self.fields()
        return {"wall_s": f["cost_wall_s"], "cpu_s": f["cost_cpu_s"], "gpu_s": f["cost_gpu_s"],
                "attempts": f["cost_attempts"]}

    def load_state_dict(self, state: dict | None) -> None:
        """Earlier attempts' totals (a checkpoint's ``cost``; None: a checkpoint written before
        costs were kept, counted as one attempt of unknown cost)."""
        state = state or {}
        self.before = {"wall": float(state.get("wall_s", 0.0)),
                       "cpu": float(state.get("cpu_s", 0.0)),
                       "gpu": float(state.get("gpu_s", 0.0))}
        self.attempts_before = int(state.get("attempts", 1))

    def credit(self, totals: dict) -> None:
        """Raise earlier attempts' totals to what their reported rows say (``totals``:
        trainables.results.cost_totals of them): epochs reported after the checkpoint a
        retry restores were paid for too."""
        for key, field in (("wall", "cost_wall_s"), ("cpu", "cost_cpu_s"),
                           ("gpu", "cost_gpu_s")):
            if totals.get(field) is not None:
                self.before[key] = max(self.before[key], float(totals[field]))
        if totals.get("cost_attempts") is not None:
            self.attempts_before = max(self.attempts_before, int(totals["cost_attempts"]))
