"""Figures (matplotlib through analysis.style; each function writes PNG and PDF and returns the
PNG path). ``colours`` maps a method (or series) label to its colour; pass the report's map so
a method has the same colour in every figure (default: analysis.style.colours of the frame).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import style
from analysis.aggregate import aggregate
from trainables.data.registry import setting_label
from trainables.methods import ELM_FAMILY, base_label

# the λ ablation: one line per ELM-family loss and DRW setting, LDAM as the λ = 0 reference
ELM_SERIES = tuple(((loss, drw), base_label(loss, drw)) for loss in ELM_FAMILY
                   for drw in (False, True))
LDAM_BANDS = tuple((drw, base_label("ldam", drw)) for drw in (False, True))


def _done(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "terminated"]


def study_colours(df: pd.DataFrame) -> dict:
    """One colour per method of the study, then the λ-ablation series names."""
    methods = list(dict.fromkeys(df["method"].dropna())) if "method" in df else []
    return style.colours([*methods, *(name for _, name in ELM_SERIES)])


@style.styled
def lambda_ablation(df: pd.DataFrame, out, value: str = "final_top1", colours=None) -> Path:
    """Top-1 vs λ for the ELM family (mean ± std over seeds); LDAM and LDAM + DRW as
    horizontal bands (mean ± std)."""
    colours = colours or study_colours(df)
    fig, ax = style.figure(figsize=(6, 4))
    d = _done(df)
    for (loss, drw), label in ELM_SERIES:
        part = d[(d["loss"] == loss) & (d["drw"] == drw)]
        if part.empty:
            continue
        agg = aggregate(part, value, keys=["lam"]).sort_values("lam")
        ax.errorbar(agg["lam"], agg["mean"], yerr=agg["std"].fillna(0), marker="o", ms=3,
                    capsize=2, label=label, color=colours.get(label))
    for drw, label in LDAM_BANDS:
        part = d[(d["loss"] == "ldam") & (d["drw"] == drw)][value].dropna()
        if len(part):
            m, s = part.mean(), part.std(ddof=1) if len(part) > 1 else 0.0
            c = colours.get(label, "grey")
            ax.axhline(m, color=c, ls="--", lw=1, label=label)
            ax.axhspan(m - s, m + s, color=c, alpha=0.12)
    ax.set_xlabel("λ (weight of the hardest negative's margin)")
    ax.set_ylabel("final-epoch test top-1 (%)")
    style.legend(fig, ax)
    ax.set_title("λ ablation (mean ± std over seeds)")
    return style.save(fig, out)


@style.styled
def margin_scale_heatmap(df: pd.DataFrame, out, value: str = "final_top1") -> Path:
    """Mean top-1 over max_m × s; cell text dark or light by the cell's brightness."""
    agg = aggregate(df, value, keys=["max_m", "s"])
    grid = agg.pivot(index="max_m", columns="s", values="mean").sort_index()
    fig, ax = style.figure(figsize=(5.5, 4))
    im = ax.imshow(grid.values, cmap="viridis", origin="lower", aspect="auto")
    ax.grid(False)
    ax.set_xticks(range(grid.shape[1]), [f"{c:g}" for c in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [f"{r:g}" for r in grid.index])
    lo, hi = np.nanmin(grid.values), np.nanmax(grid.values)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            v = grid.values[i, j]
            if not math.isnan(v):
                bright = hi > lo and (v - lo) / (hi - lo) > 0.6    # viridis is light on top
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7,
                        color="black" if bright else "white")
    ax.set_xlabel("scale s")
    ax.set_ylabel("largest margin max_m (M)")
    fig.colorbar(im, ax=ax, label="test top-1 (%)")
    return style.save(fig, out)


def _setting(d: pd.DataFrame):
    """The most common (dataset, imb_type, ratio, img_max) of the frame and its rows."""
    keys = [k for k in ("dataset", "imb_type", "ratio", "img_max") if k in d]
    top = d.groupby(keys, dropna=False).size().idxmax()
    top = top if isinstance(top, tuple) else (top,)
    mask = np.ones(len(d), dtype=bool)
    for k, v in zip(keys, top):
        mask &= (d[k] == v).to_numpy() | (d[k].isna().to_numpy() & pd.isna(v))
    return dict(zip(keys, top)), d[mask]


def class_axis(setting: dict) -> tuple[np.ndarray, list[str]]:
    """Class order (most training images first) and tick labels 'name\n(count)' for a
    setting (dataset, imb_type, ratio, img_max); names are indices where the dataset has
    none."""
    from trainables.data.imbalance import class_counts
    from trainables.data.registry import get_dataset
    info = get_dataset(setting["dataset"])
    img_max = setting.get("img_max")
    img_max = int(img_max) if img_max is not None and not pd.isna(img_max) else info.img_max
    counts = np.asarray(class_counts(info.num_classes, img_max, setting.get("imb_type", "lt"),
                                     float(setting["ratio"])))
    order = np.argsort(-counts, kind="stable")
    names = style.class_names(setting["dataset"], info.num_classes)
    return order, [f"{names[i]}\n({counts[i]})" for i in order]


@style.styled
def per_class_vs_size(df: pd.DataFrame, out, methods=None, colours=None) -> Path:
    """Per-class test accuracy (mean over seeds), classes ordered by training size, named
    where the dataset has names: which classes a method rescues (e.g. Fashion-MNIST's
    'Shirt')."""
    d = _done(df)
    d = d[d["test_per_class"].notna()]
    setting, d = _setting(d)
    order, ticks = class_axis(setting)
    colours = colours or study_colours(df)
    methods = methods or list(dict.fromkeys(d["method"]))
    fig, ax = style.figure(figsize=(max(6.0, 0.45 * min(len(order), 40)), 4.2))
    x = np.arange(len(order))
    for m in methods:
        part = d[d["method"] == m]
        if part.empty:
            continue
        acc = np.nanmean(np.array(part["test_per_class"].tolist(), dtype=float), axis=0)
        ax.plot(x, acc[order], marker="o", ms=3, lw=1, label=m, color=colours.get(m))
    if len(order) <= 20:
        ax.set_xticks(x, ticks, rotation=45, ha="right", rotation_mode="anchor")
        ax.set_xlabel("class (training images), largest first")
    else:
        ax.set_xlabel("classes by training size, largest first (rank)")
    ax.set_ylabel("class test accuracy (%)")
    where = setting_label(setting["dataset"], setting.get("imb_type", "lt"), setting["ratio"])
    ax.set_title(f"{where}: per-class test accuracy")
    style.legend(fig, ax)
    return style.save(fig, out)


@style.styled
def shot_groups(df: pd.DataFrame, out, colours=None) -> Path:
    """Many / medium / few-shot accuracy, one bar per method in each group (mean ± std)."""
    d = _done(df)
    methods = list(dict.fromkeys(d["method"]))
    colours = colours or study_colours(df)
    groups = [g for g in ("test_many", "test_medium", "test_few")
              if g in d and d[g].notna().any()]
    fig, ax = style.figure(figsize=(6.5, 4))
    width = 0.8 / max(len(methods), 1)
    for k, m in enumerate(methods):
        part = d[d["method"] == m]
        means = [part[g].mean() for g in groups]
        stds = [part[g].std(ddof=1) if part[g].count() > 1 else 0.0 for g in groups]
        ax.bar(np.arange(len(groups)) + (k - (len(methods) - 1) / 2) * width, means, width,
               yerr=np.nan_to_num(stds), capsize=2, label=m, color=colours.get(m))
    ax.set_xticks(np.arange(len(groups)),
                  [f"{g.split('_')[1]}-shot" for g in groups])
    ax.set_ylabel("mean class accuracy (%)")
    from trainables.metrics import FEW_SHOT, MANY_SHOT
    ax.set_title(f"accuracy by shot group (many > {MANY_SHOT}, few < {FEW_SHOT} training images)")
    style.legend(fig, ax)
    return style.save(fig, out)


def curve_metrics(curves: pd.DataFrame, metrics=("test_top1", "train_loss")) -> list[str]:
    """The metrics that have a curve: measured at two epochs or more in some trial. A test
    evaluated once per trial (eval_every = epochs) is a point, not a curve: no panel for it."""
    c = curves[curves["metric"].isin(metrics)]
    epochs = c.groupby(["metric", "trial_id"])["epoch"].nunique().groupby("metric").max()
    return [m for m in metrics if epochs.get(m, 0) >= 2]


@style.styled
def learning_curves(curves: pd.DataFrame, df: pd.DataFrame, out,
                    metric=("test_top1", "train_loss"), colours=None) -> Path:
    """Per-epoch curves, mean with a ± std band over seeds, one line per method; one panel
    per metric that has a curve (curve_metrics: test accuracy exists only at evaluated
    epochs, train loss at every epoch)."""
    metrics = [metric] if isinstance(metric, str) else list(metric)
    metrics = curve_metrics(curves, metrics) or metrics[:1]
    colours = colours or study_colours(df)
    names = {"test_top1": "test top-1 (%)", "train_loss": "training loss"}
    fig, axes = style.figure(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    for ax, name in zip(axes[0], metrics):
        c = curves[curves["metric"] == name].merge(df[["trial_id", "method"]], on="trial_id")
        c = c.drop_duplicates(["trial_id", "epoch"], keep="last")   # a resumed epoch once
        for m, part in c.groupby("method", sort=False):
            s = part.groupby("epoch")["value"].agg(["mean", "std"]).fillna(0)
            col = colours.get(m)
            ax.plot(s.index, s["mean"], marker="o", ms=3, label=m, color=col)
            ax.fill_between(s.index, s["mean"] - s["std"], s["mean"] + s["std"], alpha=0.2,
                            color=col)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(names.get(name, name))
    style.legend(fig, axes[0][0])       # the same methods in every panel: one legend
    return style.save(fig, out)


@style.styled
def effective_margins(margins: dict, out, colours=None) -> Path:
    """Histogram of per-sample effective margins Δy − λΔc* (the paper's Fig. 2 idea);
    ``margins`` maps a label to an array (see analysis.margins.effective_margins)."""
    colours = colours or style.colours(margins)
    fig, ax = style.figure(figsize=(6, 4))
    for label, values in margins.items():
        ax.hist(np.asarray(values), bins=60, alpha=0.5, label=label, color=colours.get(label))
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("effective margin Δy − λΔc*")
    ax.set_ylabel("training images")
    style.legend(fig, ax)
    return style.save(fig, out)


@style.styled
def embedding(features: np.ndarray, labels: np.ndarray, out, title: str = "",
              class_names=None, projection: str = "umap") -> Path:
    """2-D embedding of penultimate features, one colour per class (named when given);
    UMAP unless ``projection='pca'`` is asked for (a missing umap-learn is an error naming
    it, never a silent fallback), written in the title. One panel per method:
    analysis.embedding.feature_embedding."""
    from analysis.embedding import project_2d
    xy, how = project_2d(features, projection), projection.upper()
    labels = np.asarray(labels)
    classes = sorted(set(labels.tolist()))
    fig, ax = style.figure(figsize=(5.5, 5))
    for k, c in enumerate(classes):
        sel = labels == c
        name = class_names[c] if class_names is not None and c < len(class_names) else str(c)
        ax.scatter(xy[sel, 0], xy[sel, 1], s=4, label=name,
                   color=style.PALETTE[k % len(style.PALETTE)])
    if len(classes) <= 20:
        fig.legend(markerscale=2, fontsize=7, loc="outside right upper")
    ax.set_title(f"{title} ({how})")
    ax.set_xticks([])
    ax.set_yticks([])
    return style.save(fig, out)
