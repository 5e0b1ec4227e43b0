"""Post-hoc logit adjustment and τ-normalisation (analysis.posthoc) against the formulas."""
from __future__ import annotations

import math

import torch

from analysis.posthoc import choose_tau, evaluate_logits, la_logits, tau_norm_logits

F64 = torch.float64
C10 = [int(5000 * (1 / 100) ** (i / 9)) for i in range(10)]


def data(seed=0, n=300, d=16, c=10):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g, dtype=F64).relu()         # pooled ReLU features
    w = torch.randn(c, d, generator=g, dtype=F64) * torch.linspace(3, 0.5, c, dtype=F64)[:, None]
    y = torch.randint(0, c, (n,), generator=g)
    return h, w, y


def test_la_with_tau_zero_is_the_plain_prediction():
    h, w, y = data()
    z = h @ w.T
    assert torch.equal(la_logits(z, C10, 0.0), z)
    assert torch.equal(la_logits(z, C10, 0.0).argmax(1), z.argmax(1))


def test_la_subtracts_tau_log_prior_and_favours_tail_classes():
    h, w, y = data(1)
    z = h @ w.T
    total = sum(C10)
    ref = z - 1.5 * torch.tensor([math.log(n / total) for n in C10], dtype=F64)
    torch.testing.assert_close(la_logits(z, C10, 1.5), ref, rtol=1e-12, atol=1e-12)
    tail = lambda t: (la_logits(z, C10, t).argmax(1) >= 7).sum()   # noqa: E731
    assert tail(2.0) > tail(0.0)


def test_tau_norm_with_tau_zero_leaves_predictions_unchanged():
    h, w, y = data(2)
    z = h @ w.T                                    # the trained classifier, bias dropped
    torch.testing.assert_close(tau_norm_logits(h, w, 0.0), z, rtol=1e-12, atol=1e-12)
    assert torch.equal(tau_norm_logits(h, w, 0.0).argmax(1), z.argmax(1))


def test_tau_norm_one_is_unit_rows_and_matches_the_formula():
    h, w, y = data(3)
    for tau in (0.5, 1.0):
        ref = torch.stack([h @ (w[j] / float(w[j].norm()) ** tau) for j in range(10)], 1)
        torch.testing.assert_close(tau_norm_logits(h, w, tau), ref, rtol=1e-12, atol=1e-12)
    # τ = 1: every class's row has norm 1, so the large-norm (head) rows lose their advantage
    assert (tau_norm_logits(h, w, 1.0).argmax(1) == 0).sum() < (h @ w.T).argmax(1).eq(0).sum()


def test_tau_is_chosen_on_validation_class_mean_accuracy():
    # validation labels all tail classes: the best τ must move predictions there, and the
    # score is the class-mean accuracy evaluate_logits reports for that τ
    h, w, _ = data(4)
    z = h @ w.T
    y = torch.full((len(z),), 9)
    tau, score = choose_tau(lambda t: la_logits(z, C10, t), y, C10)
    assert tau > 0
    assert score == evaluate_logits(la_logits(z, C10, tau), y, C10)["class_mean"]
    assert score >= evaluate_logits(z, y, C10)["class_mean"]


# =========================================================================================
# end to end on a study folder laid out as Tune writes it (tiny synthetic trial, no Ray)
# =========================================================================================
def _fake_study(root, val_fraction=0.3):
    import json

    from trainables.config import TrialConfig
    from trainables.engine import Trainer
    from trainables.results import trial_static_fields
    cfg = TrialConfig(dataset="synthetic", ratio=10.0, img_max=30, batch_size=32,
                      eval_batch_size=200, epochs=1, device="cpu",
                      val_fraction=val_fraction)
    d = root / "train_trial_abcde_00000_0"
    (d / "checkpoint_000001").mkdir(parents=True)
    trainer = Trainer(cfg)
    static = trial_static_fields(cfg)
    with open(d / "result.json", "w") as f:
        for m in trainer.epochs():
            f.write(json.dumps({**m, **static, "trial_id": "abcde_00000"}) + "\n")
    trainer.save(d / "checkpoint_000001" / "trial.pt")
    (d / "params.json").write_text(json.dumps({"base": cfg.to_dict()}))
    return root


def test_posthoc_decoupled_and_plots_on_a_study_folder(tmp_path):
    from analysis import diagnostics, posthoc
    from trainables import decoupled
    study = _fake_study(tmp_path / "s")
    assert len(decoupled.run_for_study(str(study), "crt")) == 1
    rows, table = posthoc.run(str(study))
    assert [r["method"] for r in rows] == ["CE + post-hoc LA", "CE + τ-norm"]
    assert all(r["tau"] in posthoc.TAU_GRID for r in rows)
    labels = list(table["Method"])
    assert labels[0] == "CE" and "CE + cRT" in labels
    la = f"CE + post-hoc LA (τ*={rows[0]['tau']:g})"
    assert la in labels and f"CE + τ-norm (τ*={rows[1]['tau']:g})" in labels
    assert (study / "posthoc.json").exists()
    # the printed table and the rows agree: top-1 of the post-hoc row is the one computed
    shown = table.set_index("Method")
    assert shown.loc[la, "Top-1 final (%)"] == f"{rows[0]['top1']:.2f}"
    assert shown.loc["CE + cRT", "Seeds"] == "1"
    md = posthoc.markdown(table)
    assert "CE + cRT" in md and "ECE (%)" in md and "Macro-F1 (%)" in md
    paths = diagnostics.plot_all(study, tmp_path / "plots")
    assert {p.name for p in paths} >= {"reliability.png", "confusion_ce.png",
                                       "precision_recall_vs_size.png"}


def test_posthoc_refuses_a_trial_without_validation_split(tmp_path, capsys):
    from analysis import posthoc
    study = _fake_study(tmp_path / "s", val_fraction=0.0)
    assert posthoc.main([str(study)]) == 2
    assert "val_fraction" in capsys.readouterr().err
    assert not (study / "posthoc.json").exists()
