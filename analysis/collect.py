"""Read a study folder (as Ray Tune wrote it) into pandas, without Ray running.

Works on a finished study, one still running, or one whose driver was killed. A study folder
may hold several runs (an extended study); the reading itself lives in ``trainables.results``
(shared with the launcher and the trainable) and this module only shapes it into tables:
one row per trial key, so a retried or re-launched configuration counts once.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from trainables.config import LOSS_HPARAMS
from trainables.results import (FINISHED, epoch_rows, one_per_key, read_results,  # noqa: F401
                                study_trials,
                                trial_dirs, trial_state, tune_statuses)

# result keys copied to the one-row-per-trial table (the rest stays in load_curves)
_FINAL_KEYS = ("test_top1", "test_top3", "test_top5", "test_many", "test_medium", "test_few",
               "test_per_class", "test_ece", "test_nll", "test_macro_f1", "test_precision",
               "test_recall", "test_confusion", "best_test_top1", "best_epoch", "val_top1",
               "val_ece", "val_macro_f1", "method",
               "head_used", "node", "package_version", "git_commit", "git_diff_sha")
# hyper-parameters whose meaning is the same for every loss that takes them get one column;
# the others (focal's γ=1 vs EQLv2's γ=12 vs MM-LDAM's γ=1.528...) one column per loss
SHARED_HPARAMS = ("s", "max_m", "lam", "tau")


def hparam_columns(loss: str, used: dict) -> dict:
    """The loss hyper-parameters as used, under unambiguous column names: ``lam``, ``s``,
    ``max_m`` as they are, any other as ``<loss>.<name>`` (e.g. ``focal.gamma``)."""
    return {(k if k in SHARED_HPARAMS else f"{loss}.{k}"): v for k, v in used.items()}


def _row(t: dict, study: str) -> dict:
    rows, raw, cfg = t["epochs"], t["raw"], t["config"]
    last = rows[-1] if rows else {}
    evals = [r for r in rows if "test_top1" in r]
    final = evals[-1] if evals else {}
    row = {"study": study, "run": t["run"], "trial_key": t["trial_key"],
           "trial_id": t["trial_id"], "trial_dir": str(t["trial_dir"]), "status": t["status"],
           "epochs_done": last.get("epoch", 0),
           # every row, retried epochs included: the compute the trial really used
           "train_time_s": sum(r.get("train_time_s", 0.0) or 0.0 for r in raw),
           "train_images_per_s": last.get("train_images_per_s"),
           **{k: v for k, v in cfg.items() if k not in LOSS_HPARAMS}}
    row.update({k: final.get(k, last.get(k)) for k in _FINAL_KEYS})
    used = {k[3:]: v for k, v in last.items() if k.startswith("hp_")}
    if not used:   # no report yet: the config's own (possibly None = default) values
        used = {k: cfg.get(k) for k in LOSS_HPARAMS if cfg.get(k) is not None}
    row.update(hparam_columns(cfg.get("loss", ""), used))
    row["final_top1"] = final.get("test_top1") if row["status"] == "terminated" else None
    row["best_top1_test_selected"] = last.get("best_test_top1")
    return row


def load_study(path: str | Path, *, every_run: bool = False) -> pd.DataFrame:
    """One row per trial key over every run of the study (a key retried or launched again:
    its finished trial); ``every_run=True`` keeps every trial folder instead. Columns: identity
    (run, trial_key, trial_id), the full config, state, final/best metrics, provenance."""
    trials = study_trials(path)
    if not every_run:
        trials = one_per_key(trials)
    return pd.DataFrame([_row(t, Path(path).name) for t in trials])


def study_runs(path: str | Path, df: pd.DataFrame | None = None) -> pd.DataFrame:
    """Which run added which trials: one row per run of ``study.json`` (launched, kept,
    finished, when, from which file); empty for a folder without study.json."""
    import json
    try:
        runs = json.loads((Path(path) / "study.json").read_text()).get("runs") or []
    except (OSError, ValueError):
        runs = []
    df = load_study(path) if df is None else df
    rows = []
    for r in runs:
        mine = df[df["run"] == r["run"]] if len(df) else df
        rows.append({"run": r["run"], "started": r.get("started_at"),
                     "study file": Path(r.get("source") or "?").name,
                     "added": r.get("launched"), "kept from earlier runs": r.get("kept", 0),
                     "finished": int(mine["status"].isin(FINISHED).sum()) if len(mine)
                     else 0, "command": r.get("command", "")})
    return pd.DataFrame(rows)


def load_curves(path: str | Path, *, every_run: bool = False) -> pd.DataFrame:
    """Per-epoch metrics of every trial (one per key unless ``every_run``), long format
    (trial_id, epoch, metric, value)."""
    rows = []
    trials = study_trials(path)
    for t in (trials if every_run else one_per_key(trials)):
        for r in t["epochs"]:
            for k, v in r.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "epoch":
                    rows.append({"trial_id": r.get("trial_id", t["trial_id"]),
                                 "epoch": r.get("epoch"), "metric": k, "value": v})
    return pd.DataFrame(rows, columns=["trial_id", "epoch", "metric", "value"])


def summary_table(df: pd.DataFrame, value: str = "final_top1") -> pd.DataFrame:
    """mean, std (ddof=1, the sample std over seeds) and n of ``value`` per (method, dataset,
    imb_type, ratio): a view of analysis.aggregate.aggregate, the one implementation."""
    from analysis.aggregate import aggregate
    keys = [k for k in ("method", "dataset", "imb_type", "ratio") if k in df]
    return aggregate(df, value, keys=keys)[[*keys, "mean", "std", "n"]]
