"""Calibration, NLL, confusion and precision/recall/F1 of trainables.metrics.DiagnosticAccumulator
against hand-computed values, float64 formulas and scikit-learn."""
from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from trainables.config import TrialConfig
from trainables.engine import Trainer
from trainables.metrics import DiagnosticAccumulator

F64 = torch.float64


def logits_with_confidence(conf, pred, c):
    """Rows whose softmax puts ``conf`` on ``pred`` and spreads the rest evenly."""
    conf = torch.as_tensor(conf, dtype=F64)
    z = ((1 - conf) / (c - 1)).log()[:, None].repeat(1, c)
    z[torch.arange(len(pred)), pred] = conf.log()
    return z


def run(z, y, c):
    acc = DiagnosticAccumulator(c, "cpu")
    for start in range(0, len(y), 37):   # several batches: sums must accumulate
        acc.update(z[start:start + 37], y[start:start + 37])
    return acc


def case(groups, c=10, seed=0):
    """groups: (confidence, n, n_correct): n rows at that confidence, n_correct of them right."""
    g = torch.Generator().manual_seed(seed)
    confs, preds, ys = [], [], []
    for conf, n, k in groups:
        pred = torch.randint(0, c, (n,), generator=g)
        wrong = (pred + torch.randint(1, c, (n,), generator=g)) % c
        ys.append(torch.where(torch.arange(n) < k, pred, wrong))
        confs += [conf] * n
        preds.append(pred)
    pred, y = torch.cat(preds), torch.cat(ys)
    return logits_with_confidence(confs, pred, c), y


def test_ece_of_perfectly_calibrated_case_is_zero():
    # in every bin the accuracy equals the confidence exactly
    z, y = case([(0.55, 200, 110), (0.7, 100, 70), (0.85, 200, 170), (0.95, 400, 380)])
    out = run(z, y, 10).summary("test_")
    assert out["test_ece"] == pytest.approx(0.0, abs=1e-9)
    assert sum(out["test_rel_count"]) == len(y)


def test_ece_of_over_confident_case_equals_hand_computed_value():
    # 100 rows at 0.95 with 50 right (gap 0.45), 300 rows at 0.75 with 150 right (gap 0.25):
    # ECE = 100/400 · 0.45 + 300/400 · 0.25 = 0.3, reported in percent
    z, y = case([(0.95, 100, 50), (0.75, 300, 150)])
    out = run(z, y, 10).summary("val_")
    assert out["val_ece"] == pytest.approx(30.0, abs=1e-9)
    # the two groups fall in bins (14/15, 1] and (11/15, 12/15]
    assert [b for b, n in enumerate(out["val_rel_count"]) if n] == [11, 14]


def test_nll_is_mean_negative_log_softmax_of_target():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(150, 7, generator=g, dtype=F64) * 3
    y = torch.randint(0, 7, (150,), generator=g)
    ref = -sum(math.log(math.exp(z[i, y[i]]) / sum(math.exp(v) for v in z[i].tolist()))
               for i in range(150)) / 150
    assert run(z, y, 7).summary("t_")["t_nll"] == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_confusion_precision_recall_f1_match_sklearn(seed):
    c = 12
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(5, 60, (c,), generator=g)
    y = torch.repeat_interleave(torch.arange(c), counts)
    z = torch.randn(len(y), c, generator=g, dtype=F64)
    z[:, 3] -= 100.0                                    # class 3 is never predicted
    z[y == 5, 5] += 1.5                                 # class 5 is easy
    acc = run(z, y, c)
    pred = z.argmax(1)
    cm = acc.confusion_matrix()
    assert [sum(row) for row in cm] == counts.tolist()
    assert cm == confusion_matrix(y, pred, labels=list(range(c))).tolist()
    out = acc.summary("test_")
    p, r, _, _ = precision_recall_fscore_support(y, pred, labels=list(range(c)),
                                                 zero_division=0)
    assert out["test_precision"] == pytest.approx((100 * p).tolist(), abs=1e-9)
    assert out["test_recall"] == pytest.approx((100 * r).tolist(), abs=1e-9)
    assert out["test_precision"][3] == 0.0
    f1 = f1_score(y, pred, labels=list(range(c)), average="macro", zero_division=0)
    assert out["test_macro_f1"] == pytest.approx(100 * f1, abs=1e-9)


def test_empty_split_and_absent_class_give_none_not_nan():
    out = DiagnosticAccumulator(4, "cpu").summary("x_")
    assert out["x_ece"] is None and out["x_nll"] is None and out["x_macro_f1"] is None
    z = torch.eye(4, dtype=F64)[[0, 1, 1]] * 5
    out = run(z, torch.tensor([0, 1, 1]), 4).summary("x_")
    assert out["x_recall"][2] is None and out["x_recall"][0] == 100.0
    assert out["x_macro_f1"] == pytest.approx(100.0)     # classes without samples left out


def test_engine_reports_diagnostics_on_s_times_cos_for_cosine_heads():
    cfg = TrialConfig(dataset="synthetic", ratio=10.0, img_max=30, batch_size=32,
                      eval_batch_size=100, epochs=1, device="cpu", loss="ldam", val_fraction=0.2)
    trainer = Trainer(cfg)
    m = trainer.fit()
    for split in ("test", "val"):
        assert {f"{split}_ece", f"{split}_nll", f"{split}_macro_f1", f"{split}_precision",
                f"{split}_recall", f"{split}_confusion"} <= set(m)
        assert [sum(r) for r in m[f"{split}_confusion"]] == \
            torch.bincount(getattr(trainer.data, f"{split}_y"), minlength=10).tolist()
    # recompute the test NLL from s·cos by hand: the engine must have applied s = 30
    trainer.model.eval()
    with torch.no_grad():
        x = (trainer.data.test_x.float() - trainer.eval_loaders["test"].mean) * \
            trainer.eval_loaders["test"].inv_std
        cos, _ = trainer.model(x)
    ref = torch.nn.functional.cross_entropy(30.0 * cos.double(), trainer.data.test_y)
    assert m["test_nll"] == pytest.approx(float(ref), rel=1e-5)
