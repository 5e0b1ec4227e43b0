"""Which of two methods is better, decided so that the answer holds up with few seeds.

The rule (docs/statistics.md has the why and the simulated error rates):

- the test: the two-sided paired t-test on the seed-paired differences a − b (the statistic of
  ``scipy.stats.ttest_rel``), from 2 paired seeds on;
- the family: the comparisons of one setting (dataset × imbalance × ratio) that have a test;
- the verdict: Holm's step-down adjustment within the family; "better" where the adjusted p is
  below ``ALPHA``, the sign of the mean difference says which;
- the interval: the paired t interval at the family's Bonferroni level 1 − ALPHA/m
  (simultaneous 95 %). It excludes 0 only where p < ALPHA/m, and there Holm rejects too, so
  interval and verdict never disagree.

Vectorised over leading axes, so the report (analysis/summary.py), the simulation test
(tests/analysis/test_verdicts.py) and bench/verdict_error_rates.py run this same code.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats

ALPHA = 0.05
MIN_SEEDS = 2        # a t-test needs a spread; a permutation test could not reach 5 % below 6


class Decision(NamedTuple):
    """Per comparison ([..., m]) unless marked per family ([...])."""
    n: np.ndarray        # paired seeds
    mean: np.ndarray     # mean difference a − b
    t: np.ndarray        # paired t statistic (NaN: fewer than MIN_SEEDS)
    p: np.ndarray        # two-sided p, unadjusted
    p_holm: np.ndarray   # Holm-adjusted within the family
    sign: np.ndarray     # +1: a better, −1: b better, 0: no verdict
    low: np.ndarray      # t interval at the family's Bonferroni level
    high: np.ndarray
    m: np.ndarray        # per family: comparisons with a test
    level: np.ndarray    # per family: 1 − alpha/m, the level of each interval


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values over the last axis; NaN (no test) stays NaN and is
    not counted in m. Valid under any dependence between the tests (comparisons here share a
    baseline), unlike Hochberg's or Benjamini–Hochberg's step-up rules."""
    p = np.asarray(p, dtype=float)
    m = np.isfinite(p).sum(-1, keepdims=True)
    order = np.argsort(p, axis=-1)                       # NaN sorts last
    ranked = np.take_along_axis(p, order, -1)
    # k-th smallest (from 0) times m − k; the running max keeps the order of the p-values
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(p.shape[-1])) * ranked, -1))
    out = np.empty_like(p)
    np.put_along_axis(out, order, adj, -1)
    return out


def decide(diffs: np.ndarray, alpha: float = ALPHA) -> Decision:
    """The verdicts of a family of comparisons from its paired differences.

    ``diffs``: [..., m, n], a − b per comparison (m) and paired seed (n); NaN where a seed is
    missing from a pair. Leading axes are independent families (simulated studies)."""
    d = np.asarray(diffs, dtype=float)
    ok = np.isfinite(d)
    n = ok.sum(-1)
    tested = n >= MIN_SEEDS
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(ok, d, 0.0).sum(-1) / n
        var = (np.where(ok, d - mean[..., None], 0.0) ** 2).sum(-1) / (n - 1)
        se = np.sqrt(var / n)
        # no spread at all: a constant shift is certain (|t| = inf), no shift is p = 1
        t = np.where(se > 0, mean / se, np.where(mean == 0, 0.0, np.copysign(np.inf, mean)))
    df = np.maximum(n - 1, 1)
    t = np.where(tested, t, np.nan)
    p = np.where(tested, 2 * stats.t.sf(np.abs(t), df), np.nan)
    p_holm = holm(p)
    sign = np.where(p_holm < alpha, np.sign(mean), 0).astype(int)
    m = tested.sum(-1)
    level = 1 - alpha / np.maximum(m, 1)
    half = stats.t.ppf(1 - alpha / (2 * np.maximum(m, 1)[..., None]), df) * se
    low, high = (np.where(tested, mean + s * half, np.nan) for s in (-1, 1))
    return Decision(n, mean, t, p, p_holm, sign, low, high, m, level)


def min_called(n: int, m: int, alpha: float = ALPHA) -> float:
    """The smallest |mean difference| that ``n`` seeds in a family of ``m`` comparisons can
    call, in standard deviations of the seed-paired differences: Holm's first step needs
    |t| > t_{1−α/(2m), n−1}, i.e. |mean d| > t_{1−α/(2m), n−1} · sd_d / √n."""
    return float(stats.t.ppf(1 - alpha / (2 * m), n - 1) / np.sqrt(n))
