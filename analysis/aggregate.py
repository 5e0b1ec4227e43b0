"""Seeds -> mean ± std per configuration, incomplete groups flagged, paired comparisons.

Std convention: the sample standard deviation over seeds (``ddof=1``, as the field's "three
runs" tables); pass ``ddof=0`` for the population std. A group of one seed has std NaN.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

CONFIG_KEYS = ("method", "dataset", "imb_type", "ratio", "loss", "drw", "lam", "max_m", "s")


def config_keys(df: pd.DataFrame, extra=()) -> list[str]:
    """The columns that identify a configuration (everything but the seed)."""
    return [k for k in (*CONFIG_KEYS, *extra) if k in df.columns and df[k].notna().any()]


def aggregate(df: pd.DataFrame, value: str = "final_top1", *, ddof: int = 1,
              planned_seeds: int | None = None, keys=None) -> pd.DataFrame:
    """mean, std, n and the seeds of ``value`` per configuration over terminated trials.

    ``incomplete`` is True where fewer seeds finished than planned (default: the largest
    number of seeds any configuration has), so a 2-seed mean is never passed off as 3."""
    keys = list(keys) if keys is not None else config_keys(df)
    done = df[(df["status"] == "terminated") & df[value].notna()]
    cols = [*keys, "mean", "std", "n", "seeds", "incomplete"]
    if done.empty:
        return pd.DataFrame(columns=cols)
    g = done.groupby(keys, sort=False, dropna=False)
    out = g[value].agg(mean="mean", std=lambda s: s.std(ddof=ddof), n="count").reset_index()
    out["seeds"] = g["seed"].apply(lambda s: sorted(int(x) for x in s)).values
    planned = planned_seeds or int(out["n"].max())
    out["incomplete"] = out["n"] < planned
    return out[cols]


def paired_difference(df: pd.DataFrame, a: str, b: str, value: str = "final_top1", *,
                      n_boot: int = 10_000, seed: int = 0, level: float = 0.95) -> dict:
    """Method ``a`` minus method ``b``, paired by (dataset, imb_type, ratio, seed).

    Returns the mean difference, a bootstrap confidence interval over the pairs, and the
    paired t statistic (with its p-value when scipy is installed)."""
    keys = [k for k in ("dataset", "imb_type", "ratio", "data_seed", "seed") if k in df]
    done = df[df["status"] == "terminated"]
    pa = done[done["method"] == a].set_index(keys)[value]
    pb = done[done["method"] == b].set_index(keys)[value]
    d = (pa - pb).dropna().to_numpy(dtype=float)
    if len(d) == 0:
        raise ValueError(f"no paired trials for '{a}' and '{b}'")
    rng = np.random.default_rng(seed)
    boots = rng.choice(d, size=(n_boot, len(d)), replace=True).mean(axis=1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    sd = d.std(ddof=1) if len(d) > 1 else float("nan")
    t = d.mean() / (sd / np.sqrt(len(d))) if len(d) > 1 and sd > 0 else float("nan")
    p = float("nan")
    try:
        from scipy import stats
        if np.isfinite(t):
            p = float(2 * stats.t.sf(abs(t), len(d) - 1))
    except ImportError:
        pass
    return {"a": a, "b": b, "n_pairs": int(len(d)), "mean_diff": float(d.mean()),
            "ci_low": float(lo), "ci_high": float(hi), "level": level, "t": float(t),
            "p_value": p}
