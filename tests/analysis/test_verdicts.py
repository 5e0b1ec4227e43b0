"""The verdict rule (analysis/verdicts.py) holds its error rate: simulated null studies with few
seeds, heavy tails and a collapsed seed call a winner at most 5 % of the time per family, where
the old rule (a percentile bootstrap per comparison) called one far more often. Plus Holm by
hand, the interval against the verdict, and the report's rows. No Ray."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import summary
from analysis.aggregate import paired_difference
from analysis.verdicts import decide, holm, min_called

STUDIES = 2000
# The bound on a rate that should be at most 5 %: plus 3 standard errors of a binomial at
# STUDIES (per comparison too: the comparisons of a study are dependent, so count studies).
BOUND = 0.05 + 3 * np.sqrt(0.05 * 0.95 / STUDIES)
# A report's family: 3 ELM-family methods (2, 3, 4) each vs LDAM (0) and vs CE (1), 6
# comparisons sharing two baselines.
A, B = np.array([2, 2, 3, 3, 4, 4]), np.array([0, 1, 0, 1, 0, 1])


def null_scores(rng, n: int, noise: str, studies: int = STUDIES) -> np.ndarray:
    """Top-1 of 5 identically distributed methods, [studies, method, seed]: a per-seed effect
    every method shares, plus noise of sd about 2 points."""
    shape = (studies, 5, n)
    if noise == "t3":                      # heavy tails: t with 3 degrees of freedom
        e = 2 * rng.standard_t(3, shape)
    else:
        e = rng.normal(0, 2, shape)
    if noise == "collapsed":               # one (method, seed) cell per study diverged
        e[np.arange(studies), rng.integers(5, size=studies), rng.integers(n, size=studies)] -= 30
    return 70 + rng.normal(0, 3, (studies, 1, n)) + e


def family_diffs(y: np.ndarray) -> np.ndarray:
    return y[:, A] - y[:, B]                                      # [studies, 6, n]


def old_rule(d: np.ndarray, n_boot: int = 1000, level: float = 0.95) -> np.ndarray:
    """The rule this replaced: percentile bootstrap of the mean difference, one comparison at
    a time, a winner where the interval excludes 0 (from 3 seeds on). Like the old code, every
    comparison reuses one set of resamples (its rng had a fixed seed)."""
    n = d.shape[-1]
    idx = np.random.default_rng(0).integers(n, size=(n_boot, n))
    weights = np.stack([np.bincount(i, minlength=n) for i in idx]) / n     # [n_boot, n]
    boots = d @ weights.T
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2], axis=-1)
    return np.where(n >= 3, np.sign(lo) * (np.sign(lo) == np.sign(hi)), 0)


def rates(sign: np.ndarray) -> tuple[float, float]:
    """False verdicts (either direction) per comparison and per family."""
    called = sign != 0
    return called.mean(), called.any(-1).mean()


@pytest.mark.parametrize("noise", ["normal", "t3", "collapsed"])
@pytest.mark.parametrize("n", [3, 5, 10])
def test_null_studies_call_a_winner_at_most_5_percent(n, noise):
    d = family_diffs(null_scores(np.random.default_rng(n * 10 + len(noise)), n, noise))
    per_comparison, per_family = rates(decide(d).sign)
    assert per_comparison <= BOUND and per_family <= BOUND, (per_comparison, per_family)


def test_the_old_rule_fails_the_same_check():
    """The check discriminates: the bootstrap rule calls winners among identical methods."""
    d = family_diffs(null_scores(np.random.default_rng(1), 3, "normal"))
    per_comparison, per_family = rates(old_rule(d))
    assert per_comparison > BOUND and per_family > BOUND, (per_comparison, per_family)


def test_a_real_difference_is_called():
    """Not vacuous: one method 3 noise sds better than the rest is found with 10 seeds."""
    y = null_scores(np.random.default_rng(2), 10, "normal")
    y[:, 2] += 3 * 2
    sign = decide(family_diffs(y)).sign
    assert (sign[:, :2] == 1).mean() > 0.9 and (sign[:, 2:] != 0).any(-1).mean() <= BOUND


def test_holm_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04; running max
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])                  # capped at 1
    out = holm([0.01, np.nan, 0.04])                 # NaN: no test, not counted in m
    assert out[0] == pytest.approx(0.02) and np.isnan(out[1]) and out[2] == pytest.approx(0.04)
    batch = holm(np.array([[0.01, 0.04, 0.03, 0.005], [0.04, 0.01, 0.005, 0.03]]))
    assert batch[1] == pytest.approx([0.06, 0.03, 0.02, 0.06])           # per family


def test_decide_is_the_paired_t_test():
    rng = np.random.default_rng(3)
    a, b = rng.normal(70, 2, 5), rng.normal(69, 2, 5)
    r, ref = decide((a - b)[None]), stats.ttest_rel(a, b)
    assert r.p[0] == pytest.approx(ref.pvalue) and r.t[0] == pytest.approx(ref.statistic)
    ci = ref.confidence_interval(0.95)               # one comparison: the plain 95 % interval
    assert (r.low[0], r.high[0]) == pytest.approx((ci.low, ci.high)) and r.level == 0.95


def test_the_interval_excludes_0_only_where_holm_calls_it():
    rng = np.random.default_rng(4)
    for n in (2, 3, 5, 10):
        shift = rng.choice([-3.0, -1.0, 0.0, 1.0, 3.0], size=(3000, 6, 1))
        r = decide(rng.normal(shift, 2, (3000, 6, n)))
        excludes = (r.low > 0) | (r.high < 0)
        assert excludes.any() and (r.sign != 0).any()
        assert not (excludes & (r.sign == 0)).any()
        assert (np.sign(r.low)[excludes] == r.sign[excludes]).all()          # the same side
        assert (excludes == (r.p < 0.05 / 6)).all()                          # Bonferroni


def test_verdict_sign_and_too_few_seeds():
    d = np.array([[2.0, 2.5, 1.5, 2.2], [-2.0, -2.5, -1.5, -2.2], [1.0, -1.0, 0.5, -0.5],
                  [3.0, np.nan, np.nan, np.nan], [0.0, 0.0, 0.0, 0.0]])
    r = decide(d)
    assert r.sign.tolist() == [1, -1, 0, 0, 0] and r.n.tolist() == [4, 4, 4, 1, 4]
    assert np.isnan(r.p[3]) and np.isnan(r.low[3]) and r.m == 4       # n < 2: not in the family
    assert r.p[4] == 1.0                              # no spread and no shift: nothing to call
    assert r.level == pytest.approx(1 - 0.05 / 4)
    assert min_called(3, 6) == pytest.approx(stats.t.ppf(1 - 0.05 / 12, 2) / np.sqrt(3))


def _study(values: dict) -> pd.DataFrame:
    loss = {"CE": "ce", "LDAM": "ldam", "ELM (λ=1.0)": "elm"}
    return pd.DataFrame([{"method": m, "loss": loss[m], "drw": False, "dataset": "cifar10",
                          "imb_type": "lt", "ratio": 100.0, "seed": s, "status": "terminated",
                          "final_top1": v} for m, vs in values.items() for s, v in enumerate(vs)])


def test_report_rows_use_the_rule():
    df = _study({"CE": [60.0, 62.0, 61.0], "LDAM": [63.0, 64.5, 64.0],
                 "ELM (λ=1.0)": [66.0, 68.1, 67.2]})
    v = summary.verdicts(df)
    r = decide(np.stack([df.final_top1[6:].to_numpy() - df.final_top1[3:6].to_numpy(),
                         df.final_top1[6:].to_numpy() - df.final_top1[:3].to_numpy()]))
    assert v["p_holm"].to_numpy() == pytest.approx(r.p_holm)
    assert v["ci_low"].to_numpy() == pytest.approx(r.low)
    assert v["verdict"].tolist() == ["ELM (λ=1.0) better"] * 2
    assert v["comparisons"].tolist() == [2, 2] and v["seeds"].tolist() == [3, 3]
    shown = summary.verdict_display(v)
    assert "simultaneous 95 % CI [" in shown["Result"][0]
    assert "(Bonferroni, 2 comparisons), 3 seeds" in shown["Result"][0]
    note = summary.verdict_note(v)
    assert "Holm" in note and f"exceed {min_called(3, 2):.1f} standard deviations" in note
    one = summary.verdicts(_study({"CE": [60.0], "ELM (λ=1.0)": [66.0]}))
    assert one["verdict"].tolist() == ["too few seeds to tell"]
    assert summary.verdict_display(one)["Result"][0] == "+6.0 top-1, 1 seed"


def test_paired_difference_is_the_t_test():
    df = _study({"CE": [60.0, 62.0, 61.0], "ELM (λ=1.0)": [66.0, 68.1, 66.2]})
    r = paired_difference(df, "ELM (λ=1.0)", "CE")
    ref = stats.ttest_rel([66.0, 68.1, 66.2], [60.0, 62.0, 61.0])
    ci = ref.confidence_interval(0.95)
    assert r["p_value"] == pytest.approx(ref.pvalue) and r["t"] == pytest.approx(ref.statistic)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((ci.low, ci.high))
