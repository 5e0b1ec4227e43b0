"""THE forward pass over a trial's checkpoint: its model, in eval mode, as the trial evaluated
(its precision, memory format and eval batch size), over any of its splits without
augmentation. Post-hoc adjustments (val and test logits, the classifier), effective margins
(train logits) and the feature embedding (a fixed sample of train features) all read it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainables.config import MARGIN_DEFAULTS, TrialConfig

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitOutputs:
    """A split's logits, penultimate features (float64: post-hoc τ is chosen on small
    differences) and labels, in split order."""
    logits: torch.Tensor
    features: torch.Tensor
    labels: torch.Tensor


@dataclass(frozen=True)
class CheckpointPass:
    cfg: TrialConfig                       # the checkpoint's own config (device: this pass's)
    class_counts: list[int]                # its training class counts
    classifier: torch.Tensor | None        # the linear head's weight (None: another head)
    splits: dict[str, SplitOutputs]


@torch.inference_mode()
def forward_pass(checkpoint: str | Path | dict, splits=("test",), *, device: str = "cpu",
                 limit: int | None = None, sample: int | None = None) -> CheckpointPass:
    """``checkpoint`` (a file, or its loaded state) run over ``splits``; ``limit``: each split's
    first images only, ``sample``: a fixed random subset of that many (in split order; the
    subset is MARGIN_DEFAULTS.sample_seed's, so figures are the same on every run)."""
    from trainables.checkpoints import load_checkpoint
    from trainables.data.build import eval_loader
    from trainables.engine import Trainer, precision_context
    state = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    cfg = TrialConfig.from_dict({**state["config"], "device": device})
    trainer = Trainer(cfg)
    trainer.model.load_state_dict(state["model"])
    trainer.model.eval()
    data, out = trainer.data, {}
    for split in splits:
        if split not in SPLITS or getattr(data, f"{split}_x", None) is None:
            have = [s for s in SPLITS if getattr(data, f"{s}_x", None) is not None]
            raise ValueError(f"split {split!r}: this trial's splits are {have}")
        x, y = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
        if limit is not None:
            x, y = x[:limit], y[:limit]
        if sample is not None and sample < len(y):
            rng = np.random.default_rng(MARGIN_DEFAULTS.sample_seed)
            keep = torch.from_numpy(np.sort(rng.choice(len(y), sample, replace=False)))
            x, y = x[keep.to(x.device)], y[keep.to(y.device)]
        loader = eval_loader(data, x, y, cfg.replace(channels_last=trainer.channels_last),
                             trainer.device)
        logits, feats, labels = [], [], []
        for xb, yb in loader:
            with precision_context(cfg, trainer.device):
                z, h = trainer.model(xb)
            logits.append(z.double())
            feats.append(h.double())
            labels.append(yb)
        out[split] = SplitOutputs(torch.cat(logits), torch.cat(feats), torch.cat(labels))
    linear = getattr(trainer.model, "linear", None)
    weight = getattr(linear, "weight", None)
    return CheckpointPass(cfg, list(data.class_counts),
                          weight.detach().double() if isinstance(weight, torch.Tensor) else None,
                          out)
