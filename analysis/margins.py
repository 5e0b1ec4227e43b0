"""What a trained trial's checkpoint says: effective margins and penultimate features."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from trainables.checkpoints import CHECKPOINT_FILE, newest_good_in
from trainables.config import MARGIN_DEFAULTS
from trainables.losses import class_margins
from trainables.losses.margin import hardest_negative


def latest_checkpoint(trial_dir) -> Path:
    """The newest good checkpoint of a trial folder (trainables.checkpoints.newest_good_in)."""
    found = newest_good_in(trial_dir)
    if found is None:
        raise FileNotFoundError(f"no checkpoint_*/{CHECKPOINT_FILE} that loads under {trial_dir}")
    return found[0]


@torch.inference_mode()
def forward_split(checkpoint, split: str = "train", limit: int | None = None,
                  device: str = "cpu", sample: int | None = None):
    """(logits, features, labels, class_counts, config) of a checkpoint's model on a split
    ('train' without augmentation, or 'test'); ``limit``: its first images, ``sample``: a
    fixed random subset of that many (in split order; the split is sorted by class)."""
    from trainables.config import TrialConfig
    from trainables.checkpoints import load_checkpoint
    from trainables.engine import Trainer
    state = load_checkpoint(checkpoint)
    cfg = TrialConfig.from_dict({**state["config"], "device": device})
    trainer = Trainer(cfg)
    trainer.load_state_dict(state)
    trainer.model.eval()
    x, y = (trainer.data.train_x, trainer.data.train_y) if split == "train" else \
        (trainer.data.test_x, trainer.data.test_y)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    if sample is not None and sample < len(y):
        rng = np.random.default_rng(MARGIN_DEFAULTS.sample_seed)
        keep = np.sort(rng.choice(len(y), sample, replace=False))
        keep = torch.from_numpy(keep).to(y.device)
        x, y = x[keep], y[keep]
    from trainables.data.build import eval_batch_size
    loader = trainer.eval_loaders["test"].__class__(
        x, y, eval_batch_size(cfg, trainer.device), trainer.data.mean, trainer.data.std,
        augment=False, shuffle=False)       # the batch size the trial evaluated with
    logits, feats = [], []
    for xb, _ in loader:
        lo, fe = trainer.model(xb)
        logits.append(lo.float())
        feats.append(fe.float())
    return torch.cat(logits), torch.cat(feats), y, trainer.data.class_counts, cfg


def effective_margins(checkpoint, lam: float | None = None, max_m: float | None = None,
                      split: str = "train") -> np.ndarray:
    """Per-sample Δ_y − λ·Δ_{c*} (c* = hardest non-target class of the model's logits)."""
    logits, _, y, counts, cfg = forward_split(checkpoint, split)
    hp = cfg.loss_hparams()
    lam = hp.get("lam", MARGIN_DEFAULTS.lam) if lam is None else lam
    max_m = hp.get("max_m", MARGIN_DEFAULTS.max_m) if max_m is None else max_m
    m = class_margins(counts, max_m)
    c = hardest_negative(logits, y)
    return (m[y] - lam * m[c]).numpy()
