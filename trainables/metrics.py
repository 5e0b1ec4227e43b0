"""Accuracy metrics accumulated on the device and read once: top-k, per-class, shot groups.

Accuracies are percentages (as the paper's tables). Shot groups (docs/recipe.md): many n > 100,
few n < 20, medium otherwise, from the TRAINING counts; an empty group is NaN, not 0.
"""
from __future__ import annotations

import math

import torch

MANY_SHOT, FEW_SHOT = 100, 20
TOPK = (1, 3, 5)


def shot_group_of(counts, many: int = MANY_SHOT, few: int = FEW_SHOT) -> list[str]:
    """'many' / 'medium' / 'few' for each class, from its training count."""
    return ["many" if n > many else "few" if n < few else "medium" for n in counts]


class TopKAccumulator:
    """Per-class hit counts for top-1/3/5, kept as device tensors (no host sync per batch)."""

    def __init__(self, num_classes: int, device):
        self.num_classes = num_classes
        self.ks = tuple(min(k, num_classes) for k in TOPK)
        self.hits = torch.zeros(len(TOPK), num_classes, dtype=torch.long, device=device)
        self.total = torch.zeros(num_classes, dtype=torch.long, device=device)

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        top = logits.topk(max(self.ks), dim=1).indices           # (N, kmax), sorted
        match = top == y[:, None]
        for i, k in enumerate(self.ks):
            hit = match[:, :k].any(dim=1).long()
            self.hits[i].index_add_(0, y, hit)
        self.total.index_add_(0, y, torch.ones_like(y))

    def summary(self, train_counts, prefix: str) -> dict:
        """Read once: overall top-k, per-class top-1 and many/medium/few mean class accuracy."""
        hits, total = self.hits.cpu(), self.total.cpu()
        out = {}
        n = int(total.sum())
        for i, k in enumerate(TOPK):
            out[f"{prefix}top{k}"] = 100.0 * int(hits[i].sum()) / max(n, 1)
        per_class = [100.0 * int(h) / int(t) if int(t) else math.nan
                     for h, t in zip(hits[0], total)]
        out[f"{prefix}per_class"] = per_class
        groups = shot_group_of(train_counts)
        for g in ("many", "medium", "few"):
            vals = [a for a, gg in zip(per_class, groups) if gg == g and not math.isnan(a)]
            out[f"{prefix}{g}"] = sum(vals) / len(vals) if vals else math.nan
        return out


ECE_BINS = 15


class DiagnosticAccumulator:
    """Confusion matrix, NLL and the 15-bin reliability histogram, kept on the device.

    ``update`` takes the logits the loss trains (s·cos for a cosine head) so the softmax
    probabilities are the ones the model was fitted to; predictions are their argmax.
    """

    def __init__(self, num_classes: int, device, bins: int = ECE_BINS):
        self.num_classes, self.bins = num_classes, bins
        self.confusion = torch.zeros(num_classes * num_classes, dtype=torch.long, device=device)
        dt = torch.float32 if torch.device(device).type == "mps" else torch.float64
        self.nll = torch.zeros((), dtype=dt, device=device)
        self.bin_count = torch.zeros(bins, dtype=dt, device=device)
        self.bin_conf = torch.zeros(bins, dtype=dt, device=device)
        self.bin_correct = torch.zeros(bins, dtype=dt, device=device)

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        # float64 where the device has it (MPS does not): NLL sums over 10^5+ images
        logp = torch.log_softmax(logits.to(self.nll.dtype), dim=1)
        conf, pred = logp.max(dim=1)
        conf = conf.exp()
        self.confusion.index_add_(0, y * self.num_classes + pred, torch.ones_like(y))
        self.nll -= logp.gather(1, y[:, None]).sum()
        # bin b holds confidences in (b/B, (b+1)/B]: Guo et al.'s equal-width bins
        b = (torch.ceil(conf * self.bins).long() - 1).clamp_(0, self.bins - 1)
        self.bin_count.index_add_(0, b, torch.ones_like(conf))
        self.bin_conf.index_add_(0, b, conf)
        self.bin_correct.index_add_(0, b, (pred == y).to(conf.dtype))

    def confusion_matrix(self) -> list[list[int]]:
        """Rows: true class, columns: predicted class."""
        c = self.num_classes
        return self.confusion.view(c, c).cpu().tolist()

    def summary(self, prefix: str) -> dict:
        """ECE (%), NLL (nats, mean), per-class precision and recall (%), macro-F1 (%), and
        the reliability histogram. Undefined values are None (never NaN): recall of a class
        absent from the split, and everything on an empty split. Precision of a class never
        predicted is 0, as scikit-learn's zero_division=0, so macro-F1 counts it as 0."""
        cm = self.confusion.view(self.num_classes, self.num_classes).cpu().double()
        n = float(cm.sum())
        count, conf, corr = (t.cpu() for t in (self.bin_count, self.bin_conf, self.bin_correct))
        stats = precision_recall_f1(cm)
        out = {f"{prefix}ece": 100.0 * ece_from_bins(count, conf, corr) if n else None,
               f"{prefix}nll": float(self.nll.cpu()) / n if n else None,
               f"{prefix}precision": stats["precision"], f"{prefix}recall": stats["recall"],
               f"{prefix}macro_f1": stats["macro_f1"],
               f"{prefix}rel_count": count.tolist(), f"{prefix}rel_conf_sum": conf.tolist(),
               f"{prefix}rel_correct_sum": corr.tolist()}
        return out


def ece_from_bins(count: torch.Tensor, conf_sum: torch.Tensor, correct_sum: torch.Tensor
                  ) -> float:
    """ECE = Σ_b (n_b / N) · |acc_b − conf_b| = Σ_b |correct_b − conf_b| / N (a fraction)."""
    n = float(count.sum())
    return float((correct_sum - conf_sum).abs().sum()) / n if n else math.nan


def precision_recall_f1(cm: torch.Tensor) -> dict:
    """Per-class precision and recall (%) and macro-F1 (%) from a confusion matrix (rows true).

    Classes with no true sample have recall None and are left out of macro-F1."""
    tp = cm.diagonal()
    support, predicted = cm.sum(dim=1), cm.sum(dim=0)
    precision, recall, f1 = [], [], []
    for t, s, p in zip(tp.tolist(), support.tolist(), predicted.tolist()):
        prec = t / p if p else 0.0
        precision.append(100.0 * prec)
        if not s:
            recall.append(None)
            continue
        rec = t / s
        recall.append(100.0 * rec)
        f1.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return {"precision": precision, "recall": recall,
            "macro_f1": 100.0 * sum(f1) / len(f1) if f1 else None}
