"""The paper's Figure 3: penultimate-layer features of the TRAINING images, projected to 2-D
with UMAP (umap-learn), coloured by class, one panel per method.

Each panel is one trial: the method's lowest finished seed, its final checkpoint, the 64-d
pooled feature of up to ``EMBED_POINTS`` training images (a fixed random subset, no
augmentation). The report draws it when the study has checkpoints:

    panels = embedding_panels(load_study(study))
    feature_embedding(panels, out / "embedding", class_names=...)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.diagnostics import styled

EMBED_POINTS = 2000     # training images per panel: UMAP on 2,000 × 64 takes seconds on CPU
UMAP_PARAMS = {"n_neighbors": 15, "min_dist": 0.1, "random_state": 0}   # umap-learn defaults
PROJECTIONS = ("umap", "pca")
EXACT_NEIGHBOURS_MAX = 4096   # umap-learn computes exact neighbours below this many points


class MissingPackage(ImportError):
    """A package the figure needs is not installed; the message names the pip package."""


def require_umap():
    """The ``umap`` module, or MissingPackage naming umap-learn (never a silent fallback).

    umap-learn declares its ~100 numba kernels without ``cache=True``, so every process that
    draws an embedding compiled them again (~8 s here, each report and notebook). Turning on
    numba's on-disk cache for them (beside the package, or numba's user-wide cache where that
    is read-only) makes it a one-time cost per installation: 10.6 s -> 2.1 s for a
    2,000-point fit in a fresh process (2-core CPU, umap-learn 0.5.12). Same kernels, same
    numbers: numba recompiles when umap-learn, numba or the CPU changes."""
    try:
        import umap
    except ImportError:
        raise MissingPackage("the feature embedding needs the package 'umap-learn' (pip "
                             "install umap-learn; see requirements.txt)") from None
    _cache_numba_kernels(umap)
    return umap


_CACHED: set[str] = set()


def _cache_numba_kernels(umap) -> None:
    if umap.__name__ in _CACHED:
        return
    import importlib
    from numba.core.dispatcher import Dispatcher
    for name in ("umap_", "layouts", "utils", "distances", "spectral", "sparse"):
        try:
            mod = importlib.import_module(f"{umap.__name__}.{name}")
        except ImportError:
            continue
        for f in vars(mod).values():
            if isinstance(f, Dispatcher) and type(f._cache).__name__ == "NullCache":
                f.enable_caching()
    _CACHED.add(umap.__name__)


def project_2d(x: np.ndarray, projection: str = "umap") -> np.ndarray:
    """2-D coordinates of the rows of ``x``: UMAP (UMAP_PARAMS) or, only when asked, PCA.

    Up to UMAP's exact-neighbour size (4,096 points, the report's 2,000 among them) the
    Euclidean distances are computed here in one vectorised pass (scipy's cdist) and given
    to UMAP as ``metric="precomputed"``: UMAP itself would call its numba ``euclidean`` once
    per pair from Python (2 M calls, ~2 s a panel). Same neighbours, same graph."""
    x = np.asarray(x, dtype=np.float64)
    if projection not in PROJECTIONS:
        raise ValueError(f"projection={projection!r}; choose one of {list(PROJECTIONS)}")
    if projection == "pca":
        xc = x - x.mean(0)
        return xc @ np.linalg.svd(xc, full_matrices=False)[2][:2].T
    import warnings
    umap = require_umap()
    params = {**UMAP_PARAMS, "n_neighbors": min(15, max(2, len(x) - 1))}
    with warnings.catch_warnings():     # "n_jobs overridden by random_state": wanted
        warnings.simplefilter("ignore", UserWarning)
        if len(x) <= EXACT_NEIGHBOURS_MAX:
            from scipy.spatial.distance import cdist
            return umap.UMAP(n_components=2, metric="precomputed", **params).fit_transform(
                cdist(x, x))
        return umap.UMAP(n_components=2, **params).fit_transform(x)


def panel_trials(df: pd.DataFrame) -> list[tuple[str, int, Path]]:
    """(method, seed, final checkpoint) of each method's lowest finished seed that has one.
    Studies of the images-on-disk datasets (ImageNet-LT, Places-LT) have none: the paper draws
    the figure for CIFAR, and their training sets are not held in memory to sample from."""
    from analysis.margins import latest_checkpoint
    from trainables.config import LARGE_SCALE_DATASETS
    out = []
    done = df[(df["status"] == "terminated") & df["trial_dir"].notna()] if len(df) else df
    if len(done) and "dataset" in done:
        done = done[~done["dataset"].isin(LARGE_SCALE_DATASETS)]
    for m in dict.fromkeys(done["method"].dropna()) if len(done) else ():
        rows = done[done["method"] == m].sort_values("seed")
        for _, row in rows.iterrows():
            try:
                out.append((m, int(row["seed"]), latest_checkpoint(row["trial_dir"])))
                break
            except FileNotFoundError:
                continue
    return out


def embedding_panels(df: pd.DataFrame, points: int = EMBED_POINTS,
                     device: str = "cpu") -> dict[str, dict]:
    """method -> {features, labels, seed, dataset, num_classes} from its final checkpoint's
    model on a fixed random subset of its training images (the same subset for every method,
    since all of a study's trials share the data)."""
    from analysis.margins import forward_split
    panels = {}
    for m, seed, ckpt in panel_trials(df):
        logits, feats, y, _, cfg = forward_split(ckpt, "train", sample=points, device=device)
        panels[m] = {"features": feats.numpy(), "labels": y.cpu().numpy(), "seed": seed,
                     "dataset": cfg.dataset, "num_classes": logits.shape[1]}
    return panels


@styled
def feature_embedding(panels: dict[str, dict], out, class_names=None,
                      projection: str = "umap") -> Path:
    """One panel per method: its 2-D projection coloured by class, one shared class legend;
    the projection's name is in the title."""
    from analysis import style
    from analysis.diagnostics import figure_grid
    if not panels:
        raise ValueError("feature_embedding needs at least one panel")
    how = {"umap": "UMAP", "pca": "PCA"}[projection] if projection in PROJECTIONS else projection
    coords = {m: project_2d(p["features"], projection) for m, p in panels.items()}
    classes = sorted(set(np.concatenate([p["labels"] for p in panels.values()]).tolist()))
    fig, axes = figure_grid(len(panels), per_row=3, size=(3.2, 3.2))
    for ax, (m, p) in zip(axes, panels.items()):
        xy, labels = coords[m], np.asarray(p["labels"])
        for k, c in enumerate(classes):
            sel = labels == c
            name = class_names[c] if class_names is not None and c < len(class_names) else str(c)
            ax.scatter(xy[sel, 0], xy[sel, 1], s=3, lw=0, label=name,
                       color=style.PALETTE[k % len(style.PALETTE)])
        ax.set_title(f"{m} (seed {p['seed']})" if "seed" in p else m)
        ax.set_xticks([])
        ax.set_yticks([])
    if len(classes) <= 20:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, markerscale=3, fontsize=7, loc="outside right upper")
    fig.suptitle(f"{how} of penultimate-layer features (training images)")
    return style.save(fig, Path(out))


def report_embedding(df: pd.DataFrame, out: Path) -> Path | None:
    """The report's embedding figure, or None when the study has no checkpoints."""
    if not panel_trials(df):
        return None
    require_umap()
    from analysis import style
    panels = embedding_panels(df)
    first = next(iter(panels.values()))
    names = style.class_names(first["dataset"], first["num_classes"])
    return feature_embedding(panels, Path(out) / "embedding", class_names=names)
