"""Post-hoc baselines from a study's trained checkpoints, without retraining.

    python -m analysis posthoc STUDY [--losses ce] [--device cpu]

For every finished linear-head trial of STUDY whose loss is in ``--losses`` (CE by default):

- post-hoc logit adjustment (Menon et al., ICLR 2021): predict argmax_j (z_j − τ·log π_j),
  π the training class prior;
- τ-normalisation (Kang et al., ICLR 2020): classifier rows ŵ_j = w_j / ‖w_j‖₂^τ, bias
  dropped, logits h·ŵ_j (a cosine head is normalised already: such trials are skipped, and
  the command says so).

τ is chosen on the VALIDATION split held out from TRAIN (the trial's ``val_fraction``), never
on the test set: the τ of the grid with the best mean per-class validation accuracy (the
validation split is long-tailed like TRAIN; its class-mean accuracy is what the balanced test
set's top-1 estimates), the smallest τ on ties. The chosen τ is recorded in each row.
Rows go to STUDY/posthoc.json (strict JSON); the report reads them back as extra method rows
(analysis.collect.load_derived), and this command prints the same summary table: every method
of the study (its trials, any decoupled runs under STUDY/decoupled/, and these rows).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from trainables.checkpoints import CHECKPOINT_FILE, newest_good_in
from trainables.losses.weights import log_prior
from trainables.metrics import DiagnosticAccumulator, TopKAccumulator
from trainables.store import TrialRecord

TAU_GRID = tuple(round(0.1 * i, 1) for i in range(21))     # 0.0, 0.1, ..., 2.0
TABLE_KEYS = ("top1", "many", "medium", "few", "macro_f1", "ece")   # stored per row


# =========================================================================================
# the two adjustments (pure functions: tested on their own)
# =========================================================================================
def la_logits(z: torch.Tensor, counts, tau: float) -> torch.Tensor:
    """Post-hoc logit adjustment: z_j − τ·log π_j (argmax is the adjusted prediction)."""
    return z.double() - tau * log_prior(counts).to(z.device)


def tau_norm_logits(h: torch.Tensor, weight: torch.Tensor, tau: float) -> torch.Tensor:
    """τ-normalised linear classifier without bias: h · (w_j / ‖w_j‖^τ), weight is C×D."""
    w = weight.double()
    return h.double() @ (w / w.norm(dim=1, keepdim=True).pow(tau)).T


# =========================================================================================
# metrics of a set of logits
# =========================================================================================
def evaluate_logits(z: torch.Tensor, y: torch.Tensor, train_counts) -> dict:
    """top1, many/medium/few, class-mean accuracy, macro-F1, ECE and NLL (as the engine)."""
    c = z.shape[1]
    acc, diag = TopKAccumulator(c, z.device), DiagnosticAccumulator(c, z.device)
    acc.update(z, y)
    diag.update(z, y)
    out = acc.summary(train_counts, prefix="")
    out.update(diag.summary(prefix=""))
    per = [a for a in out["per_class"] if not math.isnan(a)]
    out["class_mean"] = sum(per) / len(per) if per else math.nan
    return out


def choose_tau(val_logits_of, y_val, counts, grid=TAU_GRID) -> tuple[float, float]:
    """(τ*, its validation class-mean accuracy): the best of ``grid``, smallest τ on ties."""
    best = None
    for tau in grid:
        score = evaluate_logits(val_logits_of(tau), y_val, counts)["class_mean"]
        if best is None or score > best[1] + 1e-12:
            best = (tau, score)
    return best


# =========================================================================================
# from a trial folder
# =========================================================================================
def posthoc_rows(trial: TrialRecord, device: str = "cpu") -> list[dict]:
    """The post-hoc LA and τ-norm rows of one finished trial."""
    from trainables.config import TrialConfig
    cfg = TrialConfig.from_dict(trial.config)
    found = newest_good_in(trial.trial_dir)
    if found is None:
        raise ValueError(f"{trial.trial_dir}: no checkpoint_*/{CHECKPOINT_FILE} to adjust")
    if cfg.val_fraction <= 0:
        raise ValueError(f"{trial.trial_dir}: val_fraction is 0; post-hoc τ is chosen on a "
                         "validation split held out from TRAIN: run with val_fraction > 0")
    from analysis.forward import forward_pass
    o = forward_pass(found[1], ("val", "test"), device=device)   # the one pass (analysis.forward)
    counts, val, test = o.class_counts, o.splits["val"], o.splits["test"]
    (zv, hv, yv), (zt, ht, yt) = ((s.logits, s.features, s.labels) for s in (val, test))
    base = _label(trial)
    rows = []
    for name, fn_val, fn_test in (
            ("post-hoc LA", lambda t: la_logits(zv, counts, t), lambda t: la_logits(zt, counts, t)),
            ("τ-norm", lambda t: tau_norm_logits(hv, o.classifier, t),
             lambda t: tau_norm_logits(ht, o.classifier, t))):
        tau, val_score = choose_tau(fn_val, yv, counts)
        m = evaluate_logits(fn_test(tau), yt, counts)
        rows.append({"method": f"{base} + {name}", "tau": tau, "val_class_mean": val_score,
                     "seed": cfg.seed, "trial_id": trial.trial_id,
                     "stage1_trial_dir": str(trial.trial_dir),
                     **{k: m[k] for k in (*TABLE_KEYS, "nll", "class_mean")}})
    return rows


def _label(trial: TrialRecord) -> str:
    evals = [r for r in trial.epochs if r.get("method")]
    return evals[-1]["method"] if evals else trial.config.get("loss", "?")


# =========================================================================================
# the study with its post-hoc rows
# =========================================================================================
def run(study: str, losses=("ce",), device: str = "cpu"):
    """Post-hoc rows of every finished linear-head trial whose loss is in ``losses``, written
    to STUDY/posthoc.json; returns (rows, the study's summary table with them and any
    decoupled runs: analysis.summary's frame, as the report shows it)."""
    import pandas as pd

    from analysis.collect import load_derived, load_study
    from analysis.summary import summary
    from trainables.config import TrialConfig
    from trainables.jsonio import dumps_strict
    from trainables.results import POSTHOC_FILE
    from trainables.store import StudyFolder
    rows = []
    for t in StudyFolder(study).trials_per_key:
        loss = t.config.get("loss")
        if t.status != "terminated" or loss not in losses or t.config.get("decouple"):
            continue
        if TrialConfig.from_dict(t.config).resolved_head() != "linear":
            print(f"{t.trial_id}: cosine head, already normalised: no τ-norm/LA post-hoc")
            continue
        rows += posthoc_rows(t, device)
    (Path(study) / POSTHOC_FILE).write_text(dumps_strict(rows, indent=1))
    df = load_study(study)
    table, _, _ = summary(pd.concat([df, load_derived(study, df)], ignore_index=True))
    return rows, table


TABLE_COLUMNS = ("Method", "Setting", "Seeds", "Top-1 final (%)", "Many-shot (%)",
                 "Medium-shot (%)", "Few-shot (%)", "Macro-F1 (%)", "ECE (%)")


def markdown(table) -> str:
    """The table as printed: the accuracy, F1 and calibration columns."""
    return table[[c for c in TABLE_COLUMNS if c in table]].to_markdown(index=False,
                                                                       disable_numparse=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis posthoc", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study", help="a study folder")
    p.add_argument("--losses", default="ce", help="comma-separated losses to adjust (ce)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--plots", metavar="DIR", help="also write the diagnostic figures there "
                   "(reliability, confusion, precision/recall vs class size)")
    a = p.parse_args(argv)
    if not (Path(a.study) / "").is_dir():
        print(f"study: {a.study} is not a folder", file=sys.stderr)
        return 2
    try:
        _, table = run(a.study, tuple(a.losses.split(",")), a.device)
    except ValueError as e:
        print(f"posthoc: {e}", file=sys.stderr)
        return 2
    print(markdown(table))
    if a.plots:
        from analysis.diagnostics import plot_all
        for path in plot_all(a.study, a.plots):
            print(path)
    return 0
