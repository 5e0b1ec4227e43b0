"""Seeds -> mean ± std per configuration, incomplete groups flagged, paired comparisons.

Std convention: the sample standard deviation over seeds (``ddof=1``, as the field's "three
runs" tables); pass ``ddof=0`` for the population std. A group of one seed has std NaN.
"""
from __future__ import annotations

import pandas as pd

from analysis.verdicts import decide

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


def paired_diffs(df: pd.DataFrame, a: str, b: str, value: str = "final_top1") -> pd.Series:
    """``a`` minus ``b`` over terminated trials, paired by (dataset, imb_type, ratio,
    data_seed, seed): one value per pair where both finished."""
    keys = [k for k in ("dataset", "imb_type", "ratio", "data_seed", "seed") if k in df]
    done = df[df["status"] == "terminated"]
    pa = done[done["method"] == a].set_index(keys)[value]
    pb = done[done["method"] == b].set_index(keys)[value]
    return (pa - pb).dropna()


def paired_difference(df: pd.DataFrame, a: str, b: str, value: str = "final_top1", *,
                      level: float = 0.95) -> dict:
    """Method ``a`` minus method ``b``, paired by (dataset, imb_type, ratio, seed), as one
    comparison on its own: the mean difference, its paired t interval at ``level``, the t
    statistic and its two-sided p-value (interval, t and p NaN below 2 pairs). The report's
    verdicts test several comparisons as a family (analysis/verdicts.py)."""
    d = paired_diffs(df, a, b, value).to_numpy(dtype=float)
    if len(d) == 0:
        raise ValueError(f"no paired trials for '{a}' and '{b}'")
    r = decide(d[None, :], alpha=1 - level)
    return {"a": a, "b": b, "n_pairs": int(len(d)), "mean_diff": float(d.mean()),
            "ci_low": float(r.low[0]), "ci_high": float(r.high[0]), "level": level,
            "t": float(r.t[0]), "p_value": float(r.p[0])}
