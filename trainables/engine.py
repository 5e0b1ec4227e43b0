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

from trainables.checkpoints import (CHECKPOINT_FORMAT, check_checkpoint, load_checkpoint,
                                    save_checkpoint)
from trainables.config import TrialConfig
from trainables.cost import CostMeter
from trainables.data.build import build_data, make_loaders
from trainables.data.fingerprint import row_fields
from trainables.losses import create_loss, drw_weights
from trainables.metrics import DiagnosticAccumulator, TopKAccumulator
from trainables.models import create_model
from trainables.provenance import provenance

CONFUSION_IN_ROW_MAX = 100   # classes: larger confusion matrices go only to the trial's file


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
def set_lr(optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr


def start_epoch(t, epoch: int) -> float:
    """Set epoch ``epoch``'s LR, DRW weights, loss epoch and batch stream on ``t`` (a Trainer,
    or a trial pack's member: anything with cfg, optimizer, criterion, data, schedule and
    train_loader); returns the LR."""
    lr = t.cfg.lr_at(epoch)
    set_lr(t.optimizer, lr)
    if t.cfg.drw:
        t.criterion.set_weight(drw_weights(t.data.class_counts, epoch,
                                           t.schedule["drw_epoch"], t.cfg.drw_beta))
    t.criterion.set_epoch(epoch)
    t.train_loader.set_epoch(epoch)
    return lr


# ---- the validation-selected epoch (docs/recipe.md, "What a result reports") ----------------
VAL_SELECTED_KEYS = ("val_best_epoch", "val_best_top1", "val_selected_test_top1",
                     "val_selected_test_many", "val_selected_test_medium",
                     "val_selected_test_few")


def val_selection_start(data, eval_loaders) -> dict:
    """The validation-selected fields before any evaluation (NaN, epoch 0), or {} for a trial
    without a validation split. ``val_split``: 'train_holdout' (``val_fraction`` of TRAIN held
    out) or 'val_list' (a split-list dataset's own validation list)."""
    if "val" not in eval_loaders:
        return {}
    held_out = getattr(data, "val_x", None) is not None
    return {"val_best_epoch": 0, "val_best_top1": math.nan, "val_selected_test_top1": math.nan,
            "val_selected_test_many": math.nan, "val_selected_test_medium": math.nan,
            "val_selected_test_few": math.nan,
            "val_split": "train_holdout" if held_out else "val_list"}


def select_on_val(best: dict, m: dict, epoch: int) -> dict:
    """``best`` with the validation-selected epoch updated by this evaluation ``m``: the epoch
    of the highest validation top-1 so far (ties: the earliest; a NaN never selected), and the
    test top-1 and shot groups of that epoch."""
    if "val_top1" not in m or "val_best_epoch" not in best:
        return best
    v, old = m["val_top1"], best["val_best_top1"]
    if math.isnan(v) or not (math.isnan(old) or v > old):
        return best
    return {**best, "val_best_epoch": epoch, "val_best_top1": v,
            "val_selected_test_top1": m.get("test_top1", math.nan),
            **{f"val_selected_test_{g}": m.get(f"test_{g}", math.nan)
               for g in ("many", "medium", "few")}}


def restore_val_selection(best: dict, data, eval_loaders, history: list[dict]) -> dict:
    """A loaded ``best``; one saved before the validation-selected fields existed gets them
    rebuilt from ``history`` (the earlier epochs' rows), as the uninterrupted run has them."""
    start = val_selection_start(data, eval_loaders)
    if not start or "val_best_epoch" in best:
        return best
    best = {**best, **start}
    for h in history:
        if "val_top1" in h:
            best = select_on_val(best, h, int(h["epoch"]))
    return best


class Trainer:
    """Everything one trial needs, built from a TrialConfig."""

    def __init__(self, cfg: TrialConfig, *, device: str | torch.device | None = None,
                 data=None, dist=None):
        """``data`` (a TrialData) replaces the dataset the config names (benchmarks, tests).
        ``dist``: a trainables.dist.Dist for a data-parallel worker, None otherwise."""
        self.cfg, self.dist = cfg, dist
        self.device = device if isinstance(device, torch.device) else \
            resolve_device(device or cfg.device)
        self.meter = CostMeter(self.device)   # from here, data building included (cost.py)
        seed_everything(cfg.seed)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.data = data if data is not None else build_data(cfg, self.device)
        self.channels_last = resolve_channels_last(cfg.channels_last, self.device)
        self.train_loader, self.eval_loaders = make_loaders(   # loaders read cfg.channels_last
            self.data, cfg.replace(channels_last=self.channels_last), self.device,
            shard=dist.shard if dist is not None else None)
        self.schedule = cfg.schedule()
        self.model = create_model(cfg.model, self.data.num_classes, in_channels=self.data.channels,
                                  head=cfg.resolved_head()).to(self.device)
        if cfg.init_weights:
            from trainables.models.resnet_imagenet import load_init_weights
            load_init_weights(self.model, cfg.init_weights, cfg.dataset)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.criterion = create_loss(cfg.loss, self.data.class_counts,
                                     **cfg.loss_hparams()).to(self.device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.lr,
                                         momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                                         nesterov=cfg.nesterov)
        self.forward = self.model       # eager; cfg.compile compiles it at the first step
        if dist is not None:   # SyncBN, DDP, global loss state (the saved model stays unwrapped)
            self.model, self.forward = dist.setup(self.model, self.criterion, cfg.sync_bn)
        self._compiled, self._compiled_shape = None, None   # see _train_forward
        self.epoch = 0                  # epochs completed
        self.status = "running"
        self.best = {"best_test_top1": math.nan, "best_epoch": 0}   # NaN until evaluated
        self.best.update(val_selection_start(self.data, self.eval_loaders))   # {} without val
        self.last_metrics: dict = {}
        self.history: list[dict] = []   # every epoch's metrics: a resumed trial can re-report
        self.confusion: dict = {}       # split -> the last evaluation's confusion matrix

    # ---- one epoch ------------------------------------------------------------------
    def _autocast(self):
        if self.cfg.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def _start_epoch(self, epoch: int) -> float:
        return start_epoch(self, epoch)

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
        train_loss = float(loss_sum) / max(seen, 1)    # the one host read of the epoch
        dt = time.perf_counter() - t0
        if not math.isfinite(train_loss):
            self.status = "diverged"
        return {"epoch": epoch + 1, "lr": lr, "train_loss": train_loss,
                "train_top1": 100.0 * int(correct) / max(seen, 1),
                "train_images_per_s": seen / dt if dt > 0 else math.nan, "train_time_s": dt}

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
            last = self.epoch == self.cfg.epochs
            if self.status == "running" and (self.epoch % self.cfg.eval_every == 0 or last):
                for split in self.eval_loaders:
                    m.update(self.evaluate(split))
                    if last and self.data.num_classes <= CONFUSION_IN_ROW_MAX:
                        m[f"{split}_confusion"] = self.confusion[split]
                if not m["test_top1"] <= self.best["best_test_top1"]:   # NaN compares False
                    self.best = {**self.best, "best_test_top1": m["test_top1"],
                                 "best_epoch": self.epoch}
                self.best = select_on_val(self.best, m, self.epoch)
            if self.status == "running" and last:
                self.status = "finished"
            m.update(self.best)
            m["channels_last_used"] = self.channels_last   # what auto (None) resolved to
            m.update(row_fields(self.data))                # which data (data/fingerprint.py)
            m.update(self.meter.tick())                    # what it cost so far (cost.py)
            m["status"] = self.status
            m["done"] = self.status != "running"
            self.last_metrics = m
            self.history.append(_plain(m))
            yield m

    def fit(self) -> dict:
        """Run to the end; returns the last epoch's metrics."""
        for _ in self.epochs():
            pass
        return self.last_metrics

    # ---- checkpoints ----------------------------------------------------------------
    def state_dict(self) -> dict:
        """Plain tensors, numbers, strings, lists and dicts only (weights_only loading)."""
        return {"format": CHECKPOINT_FORMAT, "config": self.cfg.to_dict(), "epoch": self.epoch,
                "status": self.status, "best": dict(self.best),
                "last_metrics": _plain(self.last_metrics), "history": list(self.history),
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "loss": self.criterion.state_dict(), "rng": rng_state(self.device),
                "provenance": provenance(), "cost": self.meter.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        check_checkpoint(state, self.cfg)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.criterion.load_state_dict(state["loss"])
        set_rng_state(state["rng"], self.device)
        self.epoch, self.status = int(state["epoch"]), state["status"]
        self.best = dict(state["best"])
        self.last_metrics = dict(state.get("last_metrics") or {})
        self.history = [dict(h) for h in state.get("history") or []]
        self.best = restore_val_selection(self.best, self.data, self.eval_loaders, self.history)
        self.meter.load_state_dict(state.get("cost"))   # earlier attempts' cost

    def save(self, path) -> None:
        """Write this trial's state atomically (trainables.checkpoints.save_checkpoint)."""
        save_checkpoint(self.state_dict(), path)

    def load(self, path) -> None:
        self.load_state_dict(load_checkpoint(path))


def _plain(m: dict) -> dict:
    return {k: v for k, v in m.items() if isinstance(v, (int, float, str, bool, list))}

