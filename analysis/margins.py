"""What a trained trial's checkpoint says: effective margins and penultimate features."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from trainables.losses import class_margins
from trainables.losses.margin import hardest_negative
from trainables.trainable import CHECKPOINT_FILE


def latest_checkpoint(trial_dir) -> Path:
    """The newest checkpoint of a trial folder (Tune's ``checkpoint_NNNNNN`` folders)."""
    found = sorted(Path(trial_dir).glob(f"checkpoint_*/{CHECKPOINT_FILE}"))
    if not found:
        raise FileNotFoundError(f"no checkpoint_*/{CHECKPOINT_FILE} under {trial_dir}")
    return found[-1]


@torch.inference_mode()
def forward_split(checkpoint, split: str = "train", limit: int | None = None,
                  device: str = "cpu"):
    """(logits, features, labels, class_counts, config) of a checkpoint's model on a split
    ('train' without augmentation, or 'test')."""
    from trainables.config import TrialConfig
    from trainables.engine import Trainer, load_checkpoint
    state = load_checkpoint(checkpoint)
    cfg = TrialConfig.from_dict({**state["config"], "device": device})
    trainer = Trainer(cfg)
    trainer.load_state_dict(state)
    trainer.model.eval()
    x, y = (trainer.data.train_x, trainer.data.train_y) if split == "train" else \
        (trainer.data.test_x, trainer.data.test_y)
    if limit is not None:
        x, y = x[:limit], y[:limit]
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
    lam = hp.get("lam", 0.0) if lam is None else lam
    m = class_margins(counts, hp.get("max_m", 0.5) if max_m is None else max_m)
    c = hardest_negative(logits, y)
    return (m[y] - lam * m[c]).numpy()
