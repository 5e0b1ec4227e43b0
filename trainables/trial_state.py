"""One trial's state: what a Trainer (trainables.engine) and a trial pack's Member
(trainables.pack) both are, so that a member is its trial alone by construction (issue 39).

A TrialState is built from a TrialConfig in the order of a trial's draws (``build``: loaders,
model, loss, SGD; the caller seeds first), and it owns the per-trial rules both trainers
share:

- ``start_epoch``: an epoch's LR, DRW weights, loss epoch and batch stream;
- ``train_row``: an epoch's training fields from its sums, and divergence;
- ``eval_due`` / ``finish_epoch``: which epochs are evaluated, and the epoch's row (its
  evaluations, the best and the validation-selected epoch, status, data and cost fields);
- ``state_dict`` / ``load_state_dict``: the checkpoint format (trainables.checkpoints).

How the network trains and evaluates is the subclass's (a Trainer alone; a pack's members in
one fused network), as are the cost meter (``meter``) and the global RNG state a checkpoint
carries (``rng_state`` / ``load_rng_state``: live for a Trainer, captured for a member).
"""
from __future__ import annotations

import math

import torch

from trainables.checkpoints import (CHECKPOINT_FORMAT, check_checkpoint, load_checkpoint,
                                    save_checkpoint)
from trainables.config import TrialConfig
from trainables.cost import CostMeter
from trainables.data.build import make_loaders
from trainables.data.fingerprint import row_fields
from trainables.losses import create_loss, drw_weights
from trainables.models import create_model
from trainables.provenance import provenance

CONFUSION_IN_ROW_MAX = 100   # classes: larger confusion matrices go only to the trial's file


def set_lr(optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr


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


# =========================================================================================
# the trial state
# =========================================================================================
class TrialState:
    """One trial (module docstring). The subclass sets cfg, data, device, channels_last and
    meter, seeds (engine.seed_everything) and calls ``build``."""

    cfg: TrialConfig
    data: object                  # a TrialData (trainables.data.build)
    device: torch.device
    channels_last: bool           # the memory format, auto resolved (engine)
    meter: CostMeter              # from the trial's (or its pack's) construction
    # built by build():
    train_loader: object
    eval_loaders: dict            # split -> loader: 'test', and 'val' with a validation split
    schedule: dict
    model: torch.nn.Module
    criterion: torch.nn.Module
    optimizer: torch.optim.Optimizer
    # the bookkeeping, begun by build() and carried by the checkpoint:
    epoch: int                    # epochs completed
    status: str                   # 'running', then 'finished' or 'diverged'
    best: dict                    # the best test epoch; the validation-selected one
    last_metrics: dict            # the last epoch's row
    history: list[dict]           # every epoch's row: a resumed trial can re-report
    confusion: dict               # split -> the last evaluation's confusion matrix

    def build(self, shard: tuple[int, int] | None = None) -> None:
        """Loaders, model, loss and SGD in the order of a trial's draws, so that a trial built
        anywhere (alone, in a pack) starts from the same weights and streams; then the
        bookkeeping of a trial not yet trained. ``shard``: a data-parallel worker's slice."""
        cfg, data, device = self.cfg, self.data, self.device
        self.train_loader, self.eval_loaders = make_loaders(   # loaders read cfg.channels_last
            data, cfg.replace(channels_last=self.channels_last), device, shard=shard)
        self.schedule = cfg.schedule()
        self.model = create_model(cfg.model, data.num_classes, in_channels=data.channels,
                                  head=cfg.resolved_head()).to(device)
        if cfg.init_weights:
            from trainables.models.resnet_imagenet import load_init_weights
            load_init_weights(self.model, cfg.init_weights, cfg.dataset)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.criterion = create_loss(cfg.loss, data.class_counts, **cfg.loss_hparams()).to(device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.lr,
                                         momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                                         nesterov=cfg.nesterov)
        self.epoch, self.status = 0, "running"
        self.best = {"best_test_top1": math.nan, "best_epoch": 0,   # NaN until evaluated
                     **val_selection_start(data, self.eval_loaders)}   # nothing without val
        self.last_metrics, self.history, self.confusion = {}, [], {}

    # ---- an epoch -------------------------------------------------------------------
    def start_epoch(self, epoch: int) -> float:
        """Set epoch ``epoch``'s LR, DRW weights, loss epoch and batch stream; returns the LR."""
        cfg = self.cfg
        lr = cfg.lr_at(epoch)
        set_lr(self.optimizer, lr)
        if cfg.drw:
            self.criterion.set_weight(drw_weights(self.data.class_counts, epoch,
                                                  self.schedule["drw_epoch"], cfg.drw_beta))
        self.criterion.set_epoch(epoch)
        self.train_loader.set_epoch(epoch)
        return lr

    def train_row(self, epoch: int, lr: float, loss_sum: float, correct: int, seen: int,
                  dt: float) -> dict:
        """Epoch ``epoch``'s training fields from its sums (read from the device once); a mean
        loss that is not finite (NaN/inf) marks the trial diverged."""
        train_loss = loss_sum / max(seen, 1)
        if not math.isfinite(train_loss):
            self.status = "diverged"
        return {"epoch": epoch + 1, "lr": lr, "train_loss": train_loss,
                "train_top1": 100.0 * correct / max(seen, 1),
                "train_images_per_s": seen / dt if dt > 0 else math.nan, "train_time_s": dt}

    def eval_due(self) -> bool:
        """Whether the epoch just completed is evaluated: every ``eval_every``-th and the
        last, while the trial runs."""
        return self.status == "running" and (self.epoch % self.cfg.eval_every == 0
                                             or self.epoch == self.cfg.epochs)

    def finish_epoch(self, m: dict, evals: dict | None) -> dict:
        """The row of the epoch just completed (``epoch``): its training fields ``m`` with
        ``evals`` (split -> that evaluation's fields; None: not evaluated), the best and
        validation-selected epochs, status, data and cost fields; kept in ``history``."""
        last = self.epoch == self.cfg.epochs
        if self.status == "running" and evals is not None:
            for split, out in evals.items():
                m.update(out)
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
        return m

    # ---- checkpoints ----------------------------------------------------------------
    def rng_state(self) -> dict:
        """The global RNG state the checkpoint carries (engine.rng_state's format)."""
        raise NotImplementedError

    def load_rng_state(self, rng: dict) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Plain tensors, numbers, strings, lists and dicts only (weights_only loading)."""
        return {"format": CHECKPOINT_FORMAT, "config": self.cfg.to_dict(), "epoch": self.epoch,
                "status": self.status, "best": dict(self.best),
                "last_metrics": _plain(self.last_metrics), "history": list(self.history),
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "loss": self.criterion.state_dict(), "rng": self.rng_state(),
                "provenance": provenance(), "cost": self.meter.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        check_checkpoint(state, self.cfg)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.criterion.load_state_dict(state["loss"])
        self.load_rng_state(state["rng"])
        self.epoch, self.status = int(state["epoch"]), state["status"]
        self.last_metrics = dict(state.get("last_metrics") or {})
        self.history = [dict(h) for h in state.get("history") or []]
        self.best = restore_val_selection(dict(state["best"]), self.data, self.eval_loaders,
                                          self.history)
        self.meter.load_state_dict(state.get("cost"))   # earlier attempts' cost

    def save(self, path) -> None:
        """Write this trial's state atomically (trainables.checkpoints.save_checkpoint)."""
        save_checkpoint(self.state_dict(), path)

    def load(self, path) -> None:
        self.load_state_dict(load_checkpoint(path))


def _plain(m: dict) -> dict:
    """A row's fields a checkpoint and ``history`` keep: numbers, strings and lists (the
    confusion matrices too)."""
    return {k: v for k, v in m.items() if isinstance(v, (int, float, str, bool, list))}
