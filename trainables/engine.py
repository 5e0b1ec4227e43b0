"""The training engine: one trial, epoch by epoch, resumable bit for bit.

    trainer = Trainer(cfg)                  # data on the device, model, loss, SGD
    for metrics in trainer.epochs():        # one dict per epoch; stops early if diverged
        ...                                 # report / print / trainer.save(path)

Design notes (why it is fast and faithful):
- Data and augmentation live on the device (trainables.data.loader); a step is arithmetic only.
- No host synchronisation inside an epoch: loss and accuracy sums accumulate as device tensors
  and are read once per epoch (that read also detects divergence, NaN/inf -> status 'diverged').
- Each epoch's batch order and augmentation derive from (seed, epoch) alone, and the checkpoint
  carries model, optimiser, loss state and every global RNG: resuming is bit-identical on CPU.
"""
from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from contextlib import nullcontext

import numpy as np
import torch

from trainables.config import TrialConfig
from trainables.cost import CostMeter
from trainables.data.build import build_data
from trainables.metrics import DiagnosticAccumulator, TopKAccumulator
from trainables.trial_state import VAL_SELECTED_KEYS, TrialState, set_lr  # noqa: F401 (re-export)


# =========================================================================================
# device, seeding, RNG state
# =========================================================================================
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but CUDA is not available here; use device=cpu/auto")
    return dev


def open_device(device: str | torch.device | None, cfg: TrialConfig) -> torch.device:
    """The device a trial (or a pack) runs on: ``device``, else ``cfg.device``; on CUDA with
    cuDNN's autotuner on (a trial's shapes are fixed)."""
    dev = device if isinstance(device, torch.device) else resolve_device(device or cfg.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return dev


def precision_context(cfg: TrialConfig, device: torch.device):
    """Where a trial's forward runs: under bf16 autocast for precision bf16, else as is."""
    if cfg.precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def resolve_channels_last(setting: bool | None, device: torch.device) -> bool:
    """The memory format a trial uses: ``setting`` if given, else on for CPU and CUDA.

    Same arithmetic in another layout (logits equal up to float rounding). Measured on
    ResNet32 fp32: 1.3-1.4x faster on CPU (oneDNN, `make bench`); on CUDA NHWC is what
    tensor-core convolutions want. Other devices (mps) are unmeasured, so off."""
    if setting is not None:
        return bool(setting)
    return torch.device(device).type in ("cpu", "cuda")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices). Called at the start of EVERY trial, since
    Ray may reuse a worker process (actor reuse) for many trials."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(device: str | torch.device | None = None) -> dict:
    """Every global RNG as plain types and tensors (loadable with weights_only=True): python,
    numpy, torch's CPU generator and, where CUDA is there, the generator of ``device`` only
    (the current CUDA device for None; none for a non-CUDA device), so that a checkpoint does
    not depend on how many GPUs the saving process saw."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": _to_lists(random.getstate()), "torch": torch.get_rng_state(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss]}
    index = _cuda_index(device)
    if index is not None:
        state["cuda"] = torch.cuda.get_rng_state(index)
    return state


def set_rng_state(state: dict, device: str | torch.device | None = None) -> None:
    """Restore ``rng_state``'s output. The CUDA entry goes to ``device`` (as rng_state); it is
    skipped where CUDA is absent (a CUDA checkpoint resumes on a CPU-only machine), and the
    old format's list of per-GPU states gives the one of this device's index, else the first.

    What a resume then reproduces: the global RNGs exactly. The batch order and augmentation
    do not draw from them but from the loaders' own generators, reseeded from (seed, epoch).
    The in-memory datasets' loader (trainables.data.loader) makes its generator on the data's
    device, so a resume on the same device type (CPU -> CPU, CUDA -> CUDA, any GPU count)
    draws the same order; CPU and CUDA generators draw different streams from one seed, so a
    CUDA -> CPU resume goes on with another (equally valid) order and augmentation. The
    split-list loader (trainables.data.large_scale) draws on the CPU: the same order on any
    device. Bit-identical training is promised on CPU only."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss_np = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss_np))
    index = _cuda_index(device)
    if "cuda" in state and index is not None:
        cuda = state["cuda"]
        if isinstance(cuda, (list, tuple)):   # torch.cuda.get_rng_state_all(), saved before
            cuda = cuda[index] if index < len(cuda) else cuda[0]
        torch.cuda.set_rng_state(cuda, index)


def _cuda_index(device) -> int | None:
    """The index of the CUDA device whose generator a trial's state holds: ``device``'s (the
    current one if it names none, or for None); None where CUDA is absent or ``device`` is not
    a CUDA device."""
    if not torch.cuda.is_available():
        return None
    if device is not None and torch.device(device).type != "cuda":
        return None
    index = None if device is None else torch.device(device).index
    return torch.cuda.current_device() if index is None else index


def _to_lists(x):
    return [_to_lists(v) for v in x] if isinstance(x, (tuple, list)) else x


# =========================================================================================
# the trainer
# =========================================================================================
class Trainer(TrialState):
    """Everything one trial needs, built from a TrialConfig; its bookkeeping and checkpoint
    are TrialState's (trainables.trial_state), as a trial pack's members' are."""

    def __init__(self, cfg: TrialConfig, *, device: str | torch.device | None = None,
                 data=None, dist=None):
        """``data`` (a TrialData) replaces the dataset the config names (benchmarks, tests).
        ``dist``: a trainables.dist.Dist for a data-parallel worker, None otherwise."""
        self.cfg, self.dist = cfg, dist
        self.device = open_device(device, cfg)
        self.meter = CostMeter(self.device)   # from here, data building included (cost.py)
        seed_everything(cfg.seed)
        self.data = data if data is not None else build_data(cfg, self.device)
        self.channels_last = resolve_channels_last(cfg.channels_last, self.device)
        self.build(shard=dist.shard if dist is not None else None)   # loaders, model, loss, SGD
        self.forward = self.model       # eager; cfg.compile compiles it at the first step
        if dist is not None:   # SyncBN, DDP, global loss state (the saved model stays unwrapped)
            self.model, self.forward = dist.setup(self.model, self.criterion, cfg.sync_bn)
        self._compiled, self._compiled_shape = None, None   # see _train_forward

    # ---- one epoch ------------------------------------------------------------------
    def _autocast(self):
        return precision_context(self.cfg, self.device)

    def _start_epoch(self, epoch: int) -> float:
        """TrialState.start_epoch; a subclass's own schedule goes here (trainables.decoupled)."""
        return self.start_epoch(epoch)

    def _train_forward(self, x: torch.Tensor):
        """The forward of a training step on ``x``. With cfg.compile: ``torch.compile(forward)``
        for every batch shaped as the first one (the full batch), eager for any other (the
        last, partial batch), since dynamo would compile again for a new shape. Evaluation
        runs eager too: eval and inference mode would be one more graph (two with a partial
        eval batch). Compiled at the first step, not in __init__, so that a subclass that
        replaces ``forward`` (trainables.decoupled, LWS) is what gets compiled."""
        if not self.cfg.compile:
            return self.forward
        if self._compiled is None:   # self.model stays unwrapped: same state_dict keys
            self._compiled, self._compiled_shape = torch.compile(self.forward), x.shape
        return self._compiled if x.shape == self._compiled_shape else self.forward

    def train_epoch(self, max_steps: int | None = None) -> dict:
        """One epoch (or its first ``max_steps`` steps, for benchmarks); returns its metrics."""
        epoch = self.epoch
        lr = self._start_epoch(epoch)
        self.model.train()
        self.criterion.train()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        t0 = time.perf_counter()
        by_step = self.cfg.warms_up_by_step(epoch)
        for step, (x, y) in enumerate(self.train_loader):
            if max_steps is not None and step >= max_steps:
                break
            if by_step:   # a step warm-up: this step's LR (a float set, no device work)
                set_lr(self.optimizer, self.cfg.lr_at(epoch, step))
            with self._autocast():
                logits, feat = self._train_forward(x)(x)
                loss = self.criterion(logits, y, feat)
            backward = loss
            if self.dist is not None:   # this worker's share of the global batch's mean loss
                loss, backward = self.dist.share(loss, logits, y.shape[0],
                                                 self.train_loader.global_batch)
            self.optimizer.zero_grad(set_to_none=True)
            backward.backward()
            self.optimizer.step()
            loss_sum += loss.detach().double() * y.shape[0]
            correct += (logits.detach().argmax(1) == y).sum()
            seen += y.shape[0]
        if self.dist is not None:
            loss_sum, correct, seen = self.dist.sum_epoch(loss_sum, correct, seen)
        loss_sum, correct = float(loss_sum), int(correct)   # the one host read of the epoch
        return self.train_row(epoch, lr, loss_sum, correct, seen, time.perf_counter() - t0)

    @torch.inference_mode()
    def evaluate(self, split: str = "test") -> dict:
        """Top-1/3/5, per-class and shot-group accuracy on ``split`` ('test' or 'val'), and
        ECE, NLL, precision/recall/macro-F1 (the confusion matrix is kept in ``confusion``)."""
        self.model.eval()
        if self.dist is not None:
            self.dist.sync_buffers(self.model)   # every worker evaluates rank 0's model
        acc = TopKAccumulator(self.data.num_classes, self.device)
        diag = DiagnosticAccumulator(self.data.num_classes, self.device)
        scale = float(getattr(self.criterion, "s", 1.0))   # margin losses train on s·cos
        t0, n = time.perf_counter(), 0
        for x, y in self.eval_loaders[split]:
            with self._autocast():
                logits, _ = self.forward(x)
            acc.update(logits.float(), y)
            diag.update(logits.float() * scale, y)
            n += y.shape[0]
        if self.dist is not None:   # counts and sums of the workers' shards: exact totals
            n = self.dist.sum_state(acc, diag, n=n)
        out = acc.summary(self.data.class_counts, prefix=f"{split}_")
        out.update(diag.summary(prefix=f"{split}_"))
        self.confusion[split] = diag.confusion_matrix()
        dt = time.perf_counter() - t0
        out[f"{split}_images_per_s"] = n / dt if dt > 0 else math.nan
        return out

    def epochs(self) -> Iterator[dict]:
        """Run the remaining epochs, yielding each epoch's metrics; stops after divergence."""
        while self.epoch < self.cfg.epochs and self.status == "running":
            m = self.train_epoch()
            self.epoch += 1
            evals = {split: self.evaluate(split) for split in self.eval_loaders} \
                if self.eval_due() else None
            yield self.finish_epoch(m, evals)

    def fit(self) -> dict:
        """Run to the end; returns the last epoch's metrics."""
        for _ in self.epochs():
            pass
        return self.last_metrics

    # ---- checkpoints (TrialState's format): this process's global RNGs ----------------
    def rng_state(self) -> dict:
        return rng_state(self.device)

    def load_rng_state(self, rng: dict) -> None:
        set_rng_state(rng, self.device)
