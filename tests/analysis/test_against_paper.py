"""The report notices what the paper would not expect (issue 37): an ordering of baselines
the paper reports in every setting, reversed by the study, judged by the verdicts' test; and
figures fit the data they have (one evaluation per trial is not a learning curve)."""
import numpy as np
import pandas as pd

from analysis.plots import curve_metrics
from analysis.summary import paper_orderings, reversals
from analysis.tables import paper_table1


def study(ce_minus_ldam: float, noise: float, seeds=(0, 1, 2)) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for s in seeds:
        base = 60 + rng.normal(0, 2)                      # a shared seed effect
        for method, shift in (("CE", ce_minus_ldam), ("LDAM + DRW", 0.0)):
            rows.append({"method": method, "dataset": "fashion_mnist", "imb_type": "lt",
                         "ratio": 100.0, "seed": s, "data_seed": 0, "status": "terminated",
                         "final_top1": base + shift + rng.normal(0, noise)})
    return pd.DataFrame(rows)


def test_the_papers_every_setting_orderings_come_from_its_table():
    orderings = {(a, b): k for a, b, k in paper_orderings()}
    assert orderings[("LDAM + DRW", "CE")] == 8
    t1 = paper_table1().pivot_table(index=["dataset", "imb_type", "ratio"], columns="method",
                                    values="paper_mean")
    for (a, b), k in orderings.items():
        assert not a.startswith("ELM") and (t1[a] > t1[b]).all() and len(t1) == k
    assert ("CE", "LDAM + DRW") not in orderings


def test_a_reversal_the_test_calls_is_said_so():
    (line,) = reversals(study(ce_minus_ldam=8.0, noise=0.3))
    assert line.startswith("Fashion-MNIST LT ρ=100: LDAM + DRW is below CE by 8.")
    assert "called by the test (Holm p" in line and "not called" not in line
    assert "all 8 settings of its Table I" in line and "3 paired seeds" in line


def test_a_reversal_in_the_mean_only_is_not_passed_off_as_one():
    (line,) = reversals(study(ce_minus_ldam=1.0, noise=4.0))
    assert "not called by the test" in line and "it may be noise" in line


def test_no_reversal_no_line():
    assert reversals(study(ce_minus_ldam=-5.0, noise=0.3)) == []
    assert reversals(study(ce_minus_ldam=8.0, noise=0.3).query("method == 'CE'")) == []


def test_a_test_evaluated_once_per_trial_has_no_curve():
    rows = [{"trial_id": t, "metric": "train_loss", "epoch": e, "value": 1.0 / (e + 1)}
            for t in ("a", "b") for e in range(3)]
    once = rows + [{"trial_id": t, "metric": "test_top1", "epoch": 2, "value": 50.0}
                   for t in ("a", "b")]
    assert curve_metrics(pd.DataFrame(once)) == ["train_loss"]
    every = once + [{"trial_id": "a", "metric": "test_top1", "epoch": 1, "value": 40.0}]
    assert curve_metrics(pd.DataFrame(every)) == ["test_top1", "train_loss"]
    assert curve_metrics(pd.DataFrame(rows[:1])) == []
