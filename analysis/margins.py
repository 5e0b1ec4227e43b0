"""What a trained trial's checkpoint says: effective margins and penultimate features."""
from __future__ import annotations

from pathlib import Path

import numpy as np

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


def forward_split(checkpoint, split: str = "train", limit: int | None = None,
                  device: str = "cpu", sample: int | None = None):
    """(logits, features, labels, class_counts, config) of a checkpoint's model on one split
    ('train' without augmentation, 'val' or 'test'): :func:`analysis.forward.forward_pass`."""
    from analysis.forward import forward_pass
    run = forward_pass(checkpoint, (split,), device=device, limit=limit, sample=sample)
    out = run.splits[split]
    return out.logits, out.features, out.labels, run.class_counts, run.cfg


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
