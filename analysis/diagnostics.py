"""Diagnostic figures of a study, per method (seeds pooled), from the trials' final rows:

- reliability diagram: accuracy against confidence in the 15 ECE bins, bar width = bin;
- row-normalised confusion matrix, classes ordered by training size (largest first);
- per-class precision and recall against training class size (log scale): "tail recall
  bought with head precision" in one picture.

    python -m analysis posthoc STUDY --plots OUT      (or diagnostics.plot_all(study, out))

The report (``python -m analysis report``) draws ``report_figures``: the same pictures, one
figure each, in the report's colours. Decoupled stage-2 runs (STUDY/decoupled/) count as
methods. Each function writes OUT/<name>.png (+ .pdf, analysis.style) and returns its path.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np


def final_rows(study) -> dict[str, list[dict]]:
    """method label -> the final evaluation rows of its finished trials, then of the finished
    decoupled (cRT/LWS) runs under STUDY/decoupled/."""
    from trainables.store import StudyFolder
    folder = StudyFolder.of(study)
    finals = [t.evaluations for t in folder.trials_per_key if t.status == "terminated"]
    finals += [[r for r in rows if "test_top1" in r] for _, rows in folder.decoupled]
    by: dict[str, list[dict]] = {}
    for evals in finals:
        if evals:
            by.setdefault(evals[-1].get("method", "?"), []).append(evals[-1])
    return by


def train_counts(study) -> list[int] | None:
    """The training class counts of the study's first finished trial (all share the data)."""
    from trainables.config import TrialConfig
    from trainables.data.imbalance import class_counts
    from trainables.data.registry import get_dataset
    from trainables.store import StudyFolder
    for t in StudyFolder.of(study).trials:
        cfg = TrialConfig.from_dict(t.config)
        info = get_dataset(cfg.dataset)
        if info.kind == "files":
            return None
        n = class_counts(info.num_classes, cfg.img_max or info.img_max, cfg.imb_type, cfg.ratio)
        return [int(v) for v in n]
    return None


def styled(draw):
    """:func:`analysis.style.styled` (the project's rc settings lent for the call), with
    matplotlib imported only when ``draw`` runs, so importing this module stays light."""
    @functools.wraps(draw)
    def under_rc(*args, **kwargs):
        from analysis import style
        return style.styled(draw)(*args, **kwargs)
    return under_rc


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_").lower()


def figure_grid(n: int, per_row: int = 4, size=(2.6, 2.6)):
    from analysis import style
    cols = max(1, min(n, per_row))
    rows = max(1, -(-n // cols))
    fig, axes = style.figure(rows, cols, figsize=(size[0] * cols, size[1] * rows),
                             squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


@styled
def reliability(by: dict, out: Path, colours: dict | None = None) -> Path | None:
    """One panel per method: accuracy in each of the 15 confidence bins (bars) against the
    diagonal, ECE of the pooled seeds in the title."""
    from analysis import style
    methods = [m for m, rs in by.items() if rs and all("test_rel_count" in r for r in rs)]
    if not methods:
        return None
    colours = colours or style.colours(by)
    fig, axes = figure_grid(len(methods))
    for ax, m in zip(axes, methods):
        count = np.sum([r["test_rel_count"] for r in by[m]], axis=0)
        conf = np.sum([r["test_rel_conf_sum"] for r in by[m]], axis=0)
        corr = np.sum([r["test_rel_correct_sum"] for r in by[m]], axis=0)
        b = len(count)
        edges = np.arange(b) / b
        acc = np.divide(corr, count, out=np.zeros(b), where=count > 0)
        ax.bar(edges, acc, width=1 / b, align="edge", edgecolor="k", linewidth=0.3,
               color=colours.get(m))
        mean_conf = np.divide(conf, count, out=edges + 0.5 / b, where=count > 0)
        ax.plot(mean_conf[count > 0], acc[count > 0], "k.", ms=3)
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ece = 100 * np.abs(corr - conf).sum() / max(count.sum(), 1)
        ax.set_title(f"{m}\nECE {ece:.1f}%")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
    return style.save(fig, Path(out) / "reliability")


def _row_normalised(rs: list[dict], counts) -> np.ndarray | None:
    mats = [np.asarray(r["test_confusion"], dtype=float) for r in rs if r.get("test_confusion")]
    if not mats:
        return None
    cm = np.sum(mats, axis=0)
    order = np.argsort(-np.asarray(counts), kind="stable") if counts else np.arange(len(cm))
    cm = cm[order][:, order]
    return cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)


@styled
def confusion(by: dict, counts, out: Path) -> list[Path]:
    """One figure per method (``confusion_<method>.png``): the row-normalised confusion
    matrix of its pooled seeds, classes ordered by training size (largest first)."""
    from analysis import style
    paths = []
    for m, rs in by.items():
        cm = _row_normalised(rs, counts)
        if cm is None:
            continue
        fig, ax = style.figure(figsize=(4.2, 3.8))
        _confusion_panel(fig, ax, cm, f"{m}: row-normalised confusion")
        paths.append(style.save(fig, Path(out) / f"confusion_{_slug(m)}"))
    return paths


def _confusion_panel(fig, ax, cm, title: str, colorbar: bool = True) -> None:
    im = ax.imshow(cm, vmin=0, vmax=1, cmap="viridis")
    ax.set_title(title)
    ax.set_xlabel("predicted (by training size)")
    ax.set_ylabel("true (by training size)")
    ax.grid(False)
    if colorbar:
        fig.colorbar(im, ax=ax, fraction=0.046)
    return im


@styled
def confusion_grid(by: dict, counts, out: Path) -> Path | None:
    """Every method's row-normalised confusion matrix in one figure (the report's): the
    diagonal is per-class recall, mass left of it in the lower rows is tail images predicted
    as head classes."""
    from analysis import style
    mats = {m: cm for m, rs in by.items() if (cm := _row_normalised(rs, counts)) is not None}
    if not mats:
        return None
    fig, axes = figure_grid(len(mats), size=(2.8, 2.7))
    im = None
    for ax, (m, cm) in zip(axes, mats.items()):
        im = _confusion_panel(fig, ax, cm, m, colorbar=False)
    fig.colorbar(im, ax=axes, fraction=0.03, label="share of the true class")
    return style.save(fig, Path(out) / "confusion")


@styled
def precision_recall_vs_size(by: dict, counts, out: Path, colours: dict | None = None
                             ) -> Path | None:
    """Per-class precision and recall (mean over seeds) against the class's training size."""
    from analysis import style
    if not counts:
        return None
    colours = colours or style.colours(by)
    fig, axes = style.figure(1, 2, figsize=(9, 3.6), sharex=True)
    for m, rs in by.items():
        for ax, key in zip(axes, ("test_precision", "test_recall")):
            vals = np.array([[np.nan if v is None else v for v in r[key]] for r in rs
                             if r.get(key)], dtype=float)
            if vals.size:
                ax.plot(counts, np.nanmean(vals, axis=0), "o-", ms=3, lw=1, label=m,
                        color=colours.get(m))
    for ax, name in zip(axes, ("precision (%)", "recall (%)")):
        ax.set_xscale("log")
        ax.set_xlabel("training images of the class")
        ax.set_ylabel(name)
    style.legend(fig, axes[1])
    return style.save(fig, Path(out) / "precision_recall_vs_size")


def report_figures(study, out, colours: dict | None = None) -> list[Path]:
    """The report's diagnostics: reliability panels, one confusion grid, precision/recall
    against class size (those the study has data for)."""
    by, counts = final_rows(study), train_counts(study)
    figs = [reliability(by, out, colours), confusion_grid(by, counts, out),
            precision_recall_vs_size(by, counts, out, colours)]
    return [f for f in figs if f is not None]


def plot_all(study, out) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    by, counts = final_rows(study), train_counts(study)
    paths = [reliability(by, out), *confusion(by, counts, out)]
    pr = precision_recall_vs_size(by, counts, out)
    return [p for p in paths + [pr] if p is not None]
