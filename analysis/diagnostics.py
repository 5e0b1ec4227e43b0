"""Diagnostic figures of a study, per method (seeds pooled), from the trials' final rows:

- reliability diagram: accuracy against confidence in the 15 ECE bins, bar width = bin;
- row-normalised confusion matrix, classes ordered by training size (largest first);
- per-class precision and recall against training class size (log scale): "tail recall
  bought with head precision" in one picture.

    python -m analysis posthoc STUDY --plots OUT      (or diagnostics.plot_all(study, out))

Plain matplotlib (Agg): each function writes OUT/<name>.png and returns its path.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np



def _layout(fig) -> None:
    """tight_layout unless the figure already lays itself out (analysis.style turns on
    constrained layout for every figure once imported; switching engines after a colorbar
    raises)."""
    if not fig.get_constrained_layout():
        fig.tight_layout()

def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def final_rows(study) -> dict[str, list[dict]]:
    """method label -> the final evaluation rows of its finished trials."""
    from trainables.results import one_per_key, study_trials
    by: dict[str, list[dict]] = {}
    for t in one_per_key(study_trials(study)):
        evals = [r for r in t["epochs"] if "test_top1" in r]
        if t["status"] == "terminated" and evals:
            by.setdefault(evals[-1].get("method", "?"), []).append(evals[-1])
    return by


def train_counts(study) -> list[int] | None:
    """The training class counts of the study's first finished trial (all share the data)."""
    from trainables.config import TrialConfig
    from trainables.data.imbalance import class_counts
    from trainables.data.registry import get_dataset
    from trainables.results import study_trials
    for t in study_trials(study):
        cfg = TrialConfig.from_dict(t["config"])
        info = get_dataset(cfg.dataset)
        if info.kind == "files":
            return None
        n = class_counts(info.num_classes, cfg.img_max or info.img_max, cfg.imb_type, cfg.ratio)
        return [int(v) for v in n]
    return None


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_").lower()


def reliability(by: dict, out: Path) -> Path:
    plt = _plt()
    methods = [m for m, rs in by.items() if all("test_rel_count" in r for r in rs)]
    fig, axes = plt.subplots(1, max(len(methods), 1), figsize=(3 * max(len(methods), 1), 3.2),
                             squeeze=False)
    for ax, m in zip(axes[0], methods):
        count = np.sum([r["test_rel_count"] for r in by[m]], axis=0)
        conf = np.sum([r["test_rel_conf_sum"] for r in by[m]], axis=0)
        corr = np.sum([r["test_rel_correct_sum"] for r in by[m]], axis=0)
        b = len(count)
        edges = np.arange(b) / b
        acc = np.divide(corr, count, out=np.zeros(b), where=count > 0)
        ax.bar(edges, acc, width=1 / b, align="edge", edgecolor="k", linewidth=0.3,
               label="accuracy")
        mean_conf = np.divide(conf, count, out=edges + 0.5 / b, where=count > 0)
        ax.plot(mean_conf[count > 0], mean_conf[count > 0], "r.", ms=4, label="confidence")
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ece = 100 * np.abs(corr - conf).sum() / max(count.sum(), 1)
        ax.set_title(f"{m}\nECE {ece:.1f}%", fontsize=8)
        ax.set_xlabel("confidence")
    axes[0][0].set_ylabel("accuracy")
    _layout(fig)
    path = out / "reliability.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def confusion(by: dict, counts, out: Path) -> list[Path]:
    plt = _plt()
    paths = []
    for m, rs in by.items():
        mats = [np.asarray(r["test_confusion"], dtype=float) for r in rs if "test_confusion" in r]
        if not mats:
            continue
        cm = np.sum(mats, axis=0)
        order = np.argsort(-np.asarray(counts), kind="stable") if counts else np.arange(len(cm))
        cm = cm[order][:, order]
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        fig, ax = plt.subplots(figsize=(4.2, 3.8))
        im = ax.imshow(cm, vmin=0, vmax=1, cmap="viridis")
        ax.set_title(f"{m}: row-normalised confusion", fontsize=8)
        ax.set_xlabel("predicted (by training size)")
        ax.set_ylabel("true (by training size)")
        fig.colorbar(im, ax=ax, fraction=0.046)
        _layout(fig)
        path = out / f"confusion_{_slug(m)}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def precision_recall_vs_size(by: dict, counts, out: Path) -> Path | None:
    if not counts:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharex=True)
    for m, rs in by.items():
        for ax, key in zip(axes, ("test_precision", "test_recall")):
            vals = np.array([[np.nan if v is None else v for v in r[key]] for r in rs
                             if key in r], dtype=float)
            if vals.size:
                ax.plot(counts, np.nanmean(vals, axis=0), "o-", ms=3, lw=1, label=m)
    for ax, name in zip(axes, ("precision (%)", "recall (%)")):
        ax.set_xscale("log")
        ax.set_xlabel("images of the class in TRAIN (before the val hold-out)")
        ax.set_ylabel(name)
    axes[1].legend(fontsize=7)
    _layout(fig)
    path = out / "precision_recall_vs_size.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_all(study, out) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    by, counts = final_rows(study), train_counts(study)
    paths = [reliability(by, out), *confusion(by, counts, out)]
    pr = precision_recall_vs_size(by, counts, out)
    return paths + ([pr] if pr else [])
