"""Figures (matplotlib, Agg; each function writes PNG and PDF and returns the PNG path)."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.aggregate import aggregate  # noqa: E402


def _save(fig, out) -> Path:
    out = Path(out).with_suffix("")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    for ext in (".png", ".pdf"):
        fig.savefig(str(out) + ext, dpi=130)
    plt.close(fig)
    return Path(str(out) + ".png")


def lambda_ablation(df: pd.DataFrame, out, value: str = "final_top1") -> Path:
    """Top-1 vs λ for ELM, ELM + DRW and ELM w/o Δy (mean ± std over seeds); LDAM and
    LDAM + DRW as horizontal bands."""
    fig, ax = plt.subplots(figsize=(6, 4))
    d = df[df["status"] == "terminated"].copy()
    for (loss, drw), label in ((("elm", False), "ELM"), (("elm", True), "ELM + DRW"),
                               (("elm_wo_dy", False), "ELM w/o Δy")):
        part = d[(d["loss"] == loss) & (d["drw"] == drw)]
        if part.empty:
            continue
        agg = aggregate(part, value, keys=["lam"]).sort_values("lam")
        ax.errorbar(agg["lam"], agg["mean"], yerr=agg["std"].fillna(0), marker="o", ms=3,
                    capsize=2, label=label)
    for drw, label, colour in ((False, "LDAM", "grey"), (True, "LDAM + DRW", "black")):
        part = d[(d["loss"] == "ldam") & (d["drw"] == drw)][value].dropna()
        if len(part):
            m, s = part.mean(), part.std(ddof=1) if len(part) > 1 else 0.0
            ax.axhline(m, color=colour, ls="--", lw=1, label=label)
            ax.axhspan(m - s, m + s, color=colour, alpha=0.12)
    ax.set_xlabel("λ")
    ax.set_ylabel("test top-1 (%)")
    ax.legend(fontsize=8)
    ax.set_title("λ ablation (final epoch, mean ± std over seeds)", fontsize=9)
    return _save(fig, out)


def margin_scale_heatmap(df: pd.DataFrame, out, value: str = "final_top1") -> Path:
    """Mean top-1 over max_m × s (ELM + DRW)."""
    agg = aggregate(df, value, keys=["max_m", "s"])
    grid = agg.pivot(index="max_m", columns="s", values="mean").sort_index()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    im = ax.imshow(grid.values, cmap="viridis", origin="lower", aspect="auto")
    ax.set_xticks(range(grid.shape[1]), [f"{c:g}" for c in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [f"{r:g}" for r in grid.index])
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if not math.isnan(grid.values[i, j]):
                ax.text(j, i, f"{grid.values[i, j]:.1f}", ha="center", va="center", fontsize=7,
                        color="w")
    ax.set_xlabel("s")
    ax.set_ylabel("max_m (M)")
    fig.colorbar(im, ax=ax, label="test top-1 (%)")
    return _save(fig, out)


def per_class_vs_size(df: pd.DataFrame, out, methods=None) -> Path:
    """Per-class test accuracy against the class's training size (mean over seeds)."""
    from trainables.config import TrialConfig
    from trainables.data.imbalance import class_counts
    from trainables.data.registry import get_dataset
    d = df[(df["status"] == "terminated") & df["test_per_class"].notna()]
    methods = methods or list(dict.fromkeys(d["method"]))
    fig, ax = plt.subplots(figsize=(6, 4))
    for m in methods:
        part = d[d["method"] == m]
        if part.empty:
            continue
        row = part.iloc[0]
        cfg = TrialConfig.from_dict({k: row[k] for k in ("dataset", "imb_type", "ratio",
                                                          "img_max")})
        info = get_dataset(cfg.dataset)
        counts = class_counts(info.num_classes, cfg.img_max or info.img_max, cfg.imb_type,
                              cfg.ratio)
        acc = np.nanmean(np.array(part["test_per_class"].tolist(), dtype=float), axis=0)
        ax.plot(counts, acc, marker="o", ms=3, lw=1, label=m)
    ax.set_xscale("log")
    ax.set_xlabel("training images of the class")
    ax.set_ylabel("class accuracy (%)")
    ax.legend(fontsize=8)
    return _save(fig, out)


def shot_groups(df: pd.DataFrame, out) -> Path:
    """Many / medium / few-shot accuracy per method (mean ± std over seeds)."""
    d = df[df["status"] == "terminated"]
    methods = list(dict.fromkeys(d["method"]))
    groups = ["test_many", "test_medium", "test_few"]
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(methods)), 4))
    width = 0.8 / len(groups)
    for k, g in enumerate(groups):
        stats = d.groupby("method", sort=False)[g].agg(["mean", "std"]).reindex(methods)
        ax.bar(np.arange(len(methods)) + k * width, stats["mean"], width,
               yerr=stats["std"].fillna(0), capsize=2, label=g.split("_")[1])
    ax.set_xticks(np.arange(len(methods)) + width, methods, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.legend(fontsize=8)
    return _save(fig, out)


def learning_curves(curves: pd.DataFrame, df: pd.DataFrame, out,
                    metric=("test_top1", "train_loss")) -> Path:
    """Per-epoch curves, mean with a ± std band over seeds, one line per method; one panel
    per metric (test accuracy exists only at evaluated epochs, train loss at every epoch)."""
    metrics = [metric] if isinstance(metric, str) else list(metric)
    metrics = [m for m in metrics if (curves["metric"] == m).any()] or metrics[:1]
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4), squeeze=False)
    for ax, name in zip(axes[0], metrics):
        c = curves[curves["metric"] == name].merge(df[["trial_id", "method"]], on="trial_id")
        c = c.drop_duplicates(["trial_id", "epoch"], keep="last")   # a resumed epoch once
        for m, part in c.groupby("method", sort=False):
            s = part.groupby("epoch")["value"].agg(["mean", "std"]).fillna(0)
            ax.plot(s.index, s["mean"], marker="o", ms=3, label=m)
            ax.fill_between(s.index, s["mean"] - s["std"], s["mean"] + s["std"], alpha=0.2)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out)


def effective_margins(margins: dict, out) -> Path:
    """Histogram of per-sample effective margins Δy − λΔc* (the paper's Fig. 2 idea);
    ``margins`` maps a label to an array (see analysis.margins.effective_margins)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in margins.items():
        ax.hist(np.asarray(values), bins=60, alpha=0.5, label=label)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("effective margin Δy − λΔc*")
    ax.set_ylabel("training images")
    ax.legend(fontsize=8)
    return _save(fig, out)


def embedding(features: np.ndarray, labels: np.ndarray, out, title: str = "") -> Path:
    """2-D embedding of penultimate features: UMAP if installed, else t-SNE (scikit-learn),
    else PCA (numpy) — the method used is written in the title."""
    x = np.asarray(features, dtype=np.float64)
    try:
        import umap
        xy, how = umap.UMAP(random_state=0).fit_transform(x), "UMAP"
    except ImportError:
        try:
            from sklearn.manifold import TSNE
            xy = TSNE(n_components=2, random_state=0, init="pca",
                      perplexity=min(30, max(2, len(x) // 4))).fit_transform(x)
            how = "t-SNE"
        except ImportError:
            xc = x - x.mean(0)
            xy, how = xc @ np.linalg.svd(xc, full_matrices=False)[2][:2].T, "PCA"
    fig, ax = plt.subplots(figsize=(5, 5))
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=labels, s=4, cmap="tab10")
    ax.legend(*sc.legend_elements(), fontsize=6, loc="best", markerscale=0.6)
    ax.set_title(f"{title} ({how})", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return _save(fig, out)
