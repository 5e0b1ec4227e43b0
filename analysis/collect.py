"""Read a study folder (as Ray Tune wrote it) into pandas, without Ray running.

Works on a finished study, one still running, or one whose driver was killed. A study folder
may hold several runs (an extended study); the reading itself is the study store's
(``trainables.store``: TrialRecords, the StudyRecord of study.json) and this module only shapes
it into tables: one row per trial key, so a retried or re-launched configuration counts once.
Every loader takes a folder's path or a :class:`~trainables.store.StudyFolder` already read
(the report reads the folder once and passes it to each).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from trainables.config import LOSS_HPARAMS
from trainables.results import cost_totals
from trainables.store import FINISHED, StudyFolder, TrialRecord
# re-exported: notebooks and tests read a study's folders and rows from here
from trainables.store import read_results, trial_dirs  # noqa: F401

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


def _row(t: TrialRecord, study: str) -> dict:
    raw, cfg, last = t.rows, t.config, t.last_row
    evals = t.evaluations
    final = evals[-1] if evals else {}
    row = {"study": study, "run": t.run, "trial_key": t.trial_key,
           "trial_id": t.trial_id, "trial_dir": str(t.trial_dir), "status": t.status,
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
    row.update(val_selected(last, row["status"]))
    row.update(cost_totals(raw))      # None where the rows predate costs (unknown)
    for k in _DATA_KEYS:              # None where the rows predate fingerprints (unknown)
        row[k] = next((r[k] for r in reversed(raw) if r.get(k)), None)
    return row


_DATA_KEYS = ("data_fingerprint", "data_source_fingerprint")


def val_selected(last: dict, status: str) -> dict:
    """The validation-selected epoch of a finished trial whose validation split was held out of
    TRAIN (``val_fraction`` > 0; trainables/trial_state.py ``select_on_val``): its epoch and the
    test top-1 / shot groups there. None where the trial has none (no hold-out, a split-list
    dataset's own val list, rows written before these fields, or not finished)."""
    keep = status == "terminated" and last.get("val_split") == "train_holdout"
    return {"val_selected_top1": last.get("val_selected_test_top1") if keep else None,
            "val_best_epoch": last.get("val_best_epoch") if keep else None,
            **{f"val_selected_{g}": last.get(f"val_selected_test_{g}") if keep else None
               for g in ("many", "medium", "few")}}


def _add_superseded_cost(rows: list[dict], trials: list[TrialRecord]) -> None:
    """A key tried in several trial folders (a re-launch by ``--into``, a duplicate): the row
    kept for it carries the cost of all of them, so a study's cost is everything it ran."""
    kept = {r["trial_key"]: r for r in rows if r.get("trial_key")}
    seen = {id(t) for t in trials if t.trial_key in kept
            and str(t.trial_dir) == kept[t.trial_key]["trial_dir"]}
    for t in trials:
        row = kept.get(t.trial_key)
        if row is None or id(t) in seen:
            continue
        extra = cost_totals(t.rows)
        for k in ("cost_wall_s", "cost_cpu_s", "cost_gpu_s"):
            if extra[k] is not None:
                row[k] = (row[k] or 0.0) + extra[k]


def load_study(path: str | Path | StudyFolder, *, every_run: bool = False,
               damage: list | None = None) -> pd.DataFrame:
    """One row per trial key over every run of the study (a key retried or launched again:
    its finished trial); ``every_run=True`` keeps every trial folder instead. Columns: identity
    (run, trial_key, trial_id), the full config, state, final/best metrics, provenance.
    Damaged files are skipped, each named by one line in ``damage`` (None: on stderr)."""
    folder = StudyFolder.of(path, damage)
    trials = folder.trials if every_run else folder.trials_per_key
    rows = [_row(t, folder.name) for t in trials]
    if not every_run:
        _add_superseded_cost(rows, folder.trials)
    return pd.DataFrame(rows)


# what a derived row takes from its stage-1 trial: the setting and the seed, not its metrics
_METRIC_PREFIXES = ("test_", "val_", "best_", "final_", "train_", "cost_")


def load_derived(path: str | Path | StudyFolder, df: pd.DataFrame | None = None,
                 damage: list | None = None) -> pd.DataFrame:
    """Methods derived from the study's trials without a Tune trial of their own, in
    ``load_study``'s columns, one row per (method, stage-1 trial):

    - decoupled stage-2 runs (``python -m trainables.decoupled``: STUDY/decoupled/*/), e.g.
      "CE + cRT";
    - post-hoc adjustments (``python -m analysis posthoc``: STUDY/posthoc.json), e.g.
      "CE + post-hoc LA (τ*=0.9/1.1)": the τ chosen on validation for each seed, in seed order,
      is part of the label, so the one row per method keeps them.

    Each row copies its stage-1 trial's setting and seed (so it is compared within the right
    setting) and carries ``derived_from`` (that trial's id); ``run`` is empty."""
    folder = StudyFolder.of(path, damage)
    df = load_study(folder) if df is None else df
    if df.empty:
        return pd.DataFrame()
    by_id = {r["trial_id"]: r for r in df.to_dict("records")}
    rows = []

    def derived(stage1: dict, method: str, metrics: dict, **extra) -> dict:
        row = {k: v for k, v in stage1.items() if not k.startswith(_METRIC_PREFIXES)}
        row.update(metrics)
        row.update({"method": method, "status": "terminated", "run": None,
                    "derived_from": stage1["trial_id"], "trial_id": f"{stage1['trial_id']}:"
                    f"{method}", "trial_key": f"{stage1['trial_key']}:{method}",
                    "final_top1": metrics.get("test_top1"), **extra})
        return row

    for d, results in folder.decoupled:
        stage1 = by_id.get(d.name.rsplit("_", 1)[0])
        if stage1 is None:
            continue
        final = [r for r in results if "test_top1" in r][-1]
        rows.append(derived(stage1, final["method"],
                            {k: final.get(k) for k in _FINAL_KEYS if k.startswith("test_")},
                            train_time_s=sum(r.get("train_time_s", 0.0) or 0.0
                                             for r in results), **cost_totals(results)))
    posthoc = folder.posthoc
    taus: dict[str, list] = {}
    for r in sorted(posthoc, key=lambda r: (str(r.get("method")), r.get("seed") or 0)):
        taus.setdefault(r["method"], []).append(f"{r['tau']:g}")
    for r in posthoc:
        stage1 = by_id.get(r.get("trial_id"))
        if stage1 is None:
            continue
        label = f"{r['method']} (τ*={'/'.join(taus[r['method']])})"
        rows.append(derived(stage1, label, {f"test_{k}": r.get(k) for k in
                                            ("top1", "many", "medium", "few", "macro_f1",
                                             "ece", "nll")}, tau_star=r["tau"]))
    return pd.DataFrame(rows)


def study_runs(path: str | Path | StudyFolder, df: pd.DataFrame | None = None,
               damage: list | None = None) -> pd.DataFrame:
    """Which run added which trials: one row per run of ``study.json`` (launched, kept,
    finished, when, from which file); empty for a folder without study.json."""
    folder = StudyFolder.of(path, damage)
    runs = folder.record.runs if folder.record else ()
    df = load_study(folder) if df is None else df
    rows = []
    for r in runs:
        mine = df[df["run"] == r.run] if len(df) else df
        rows.append({"run": r.run, "started": r.started_at,
                     "study file": Path(r.source or "?").name,
                     "added": r.launched, "kept from earlier runs": r.kept,
                     "finished": int(mine["status"].isin(FINISHED).sum()) if len(mine)
                     else 0, "command": r.command or ""})
    return pd.DataFrame(rows)


def load_curves(path: str | Path | StudyFolder, *, every_run: bool = False,
                damage: list | None = None) -> pd.DataFrame:
    """Per-epoch metrics of every trial (one per key unless ``every_run``), long format
    (trial_id, epoch, metric, value); damaged files as in :func:`load_study`."""
    rows = []
    folder = StudyFolder.of(path, damage)
    for t in (folder.trials if every_run else folder.trials_per_key):
        for r in t.epochs:
            for k, v in r.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "epoch":
                    rows.append({"trial_id": r.get("trial_id", t.trial_id),
                                 "epoch": r.get("epoch"), "metric": k, "value": v})
    return pd.DataFrame(rows, columns=["trial_id", "epoch", "metric", "value"])


def summary_table(df: pd.DataFrame, value: str = "final_top1") -> pd.DataFrame:
    """mean, std (ddof=1, the sample std over seeds) and n of ``value`` per (method, dataset,
    imb_type, ratio): a view of analysis.aggregate.aggregate, the one implementation."""
    from analysis.aggregate import aggregate
    keys = [k for k in ("method", "dataset", "imb_type", "ratio") if k in df]
    return aggregate(df, value, keys=keys)[[*keys, "mean", "std", "n"]]
