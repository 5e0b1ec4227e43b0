"""How the analysis writes its numbers, one rule each: a mean ± std over seeds, and which cells
of a table are bold. The report, the paper-layout tables, ``elm-study status`` and
``status --watch`` all write through these (pandas is imported only where a frame is made, so
the light console commands stay light)."""
from __future__ import annotations

import math
import sys

DASH = "–"
DECIMALS = 2        # every mean and std of a table or console line is shown to 2 decimals


def missing(x) -> bool:
    """True for None, NaN and pandas' missing values (pandas only when it is loaded already)."""
    if x is None:
        return True
    pd = sys.modules.get("pandas")
    if pd is not None and pd.api.types.is_scalar(x):
        return bool(pd.isna(x))
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return False


def mean_std(mean, std=None, n=None, *, width: int = 0) -> str:
    """'71.24 ± 0.35': the mean and the std over seeds to DECIMALS places; the mean alone where
    fewer than 2 seeds finished (``n`` < 2) or there is no std; DASH where there is no mean.
    ``width`` right-aligns the mean (or the dash) in that many characters (console columns)."""
    if missing(mean):
        return f"{DASH:>{width}}"
    text = f"{float(mean):{width}.{DECIMALS}f}"
    if (n is not None and n < 2) or missing(std):
        return text
    return f"{text} ± {float(std):.{DECIMALS}f}"


def best_cells(means, groups=None, lower=()):
    """The one bold rule: a cell is bold where its mean, rounded as it is shown (DECIMALS),
    equals the best rounded mean of its column within its group (``groups``: one label per
    row, the setting; None: the whole column), the highest or, for the columns named in
    ``lower``, the lowest; every tied cell is bold, a missing mean never is. Bold marks the
    best *mean*, not a tested winner: whether the data support a difference is the verdicts'
    word (analysis/verdicts.py, docs/statistics.md). ``means``: a frame of numbers; returns a
    frame of booleans of its shape."""
    import pandas as pd
    shown = means.apply(pd.to_numeric, errors="coerce").round(DECIMALS)
    keys = pd.Series("", index=means.index) if groups is None else pd.Series(
        list(groups), index=means.index)
    mask = pd.DataFrame(False, index=means.index, columns=means.columns)
    for col in means.columns:
        best = shown[col].groupby(keys, sort=False).transform(
            "min" if col in lower else "max")
        mask[col] = shown[col].notna() & (shown[col] == best)
    return mask
