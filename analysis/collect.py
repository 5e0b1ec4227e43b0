"""Read a study folder (as Ray Tune wrote it) into pandas, without Ray running.

Works on a finished study, one still running, or one whose driver was killed: each trial folder
holds ``params.json`` and ``result.json`` (one JSON line per reported epoch).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from trainables.config import TrialConfig
from trainables.methods import flatten_trial

# result keys copied to the one-row-per-trial table (the rest stays in load_curves)
_FINAL_KEYS = ("test_top1", "test_top3", "test_top5", "test_many", "test_medium", "test_few",
               "test_per_class", "best_test_top1", "best_epoch", "val_top1", "method",
               "hp_s", "hp_max_m", "hp_lam", "hp_gamma", "head_used", "node",
               "package_version", "git_commit")


def trial_dirs(study: str | Path) -> list[Path]:
    """Folders of the study that hold a trial (they contain params.json)."""
    root = Path(study)
    return sorted(p.parent for p in root.glob("*/params.json"))


def read_results(trial_dir: Path) -> list[dict]:
    """Every reported epoch of one trial; a torn last line (killed writer) is skipped."""
    path = trial_dir / "result.json"
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def epoch_rows(results: list[dict]) -> list[dict]:
    """One row per epoch, in epoch order: an epoch retrained after a retry from an older
    checkpoint is reported twice, and the later row is the one the final model went through."""
    by_epoch, other = {}, []
    for r in results:
        if isinstance(r.get("epoch"), int):
            by_epoch[r["epoch"]] = r
        else:
            other.append(r)
    return [by_epoch[e] for e in sorted(by_epoch)] + other


def tune_statuses(study: str | Path) -> dict:
    """trial_id -> Tune's status (TERMINATED, ERROR, RUNNING, PENDING...) from the newest
    experiment state Tune wrote in the study folder (plain JSON; {} if there is none)."""
    # newest by the timestamp in the name (Tune's own rule): every driver session writes its
    # own file, and the final sync re-copies older ones, so mtimes do not order them
    states = sorted(Path(study).glob("experiment_state-*.json"))
    for path in reversed(states):
        try:
            data = json.loads(path.read_text())
            out = {}
            for entry in data.get("trial_data", []):
                trial = json.loads(entry[0]) if isinstance(entry[0], str) else entry[0]
                out[trial["trial_id"]] = trial.get("status")
            return out
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            continue   # torn by a killed driver: try the previous one
    return {}


def trial_state(results: list[dict], trial_dir: Path, tune_status: str | None = None) -> str:
    """terminated / diverged / stopped / errored / running (running also covers pending and
    killed). ``stopped``: Tune ended it before its last epoch (an ASHA early stop)."""
    last = results[-1] if results else {}
    if last.get("status") == "diverged":
        return "diverged"
    if last.get("status") == "finished":
        return "terminated"
    if (trial_dir / "error.txt").exists() or (trial_dir / "error.pkl").exists():
        return "errored"
    if tune_status == "ERROR":
        return "errored"
    if tune_status == "TERMINATED" and results:
        return "stopped"
    return "running"


def _trial_id(d: Path, results: list[dict]) -> str:
    if results and results[-1].get("trial_id"):
        return results[-1]["trial_id"]
    parts = d.name.split("_")          # <trainable>_<exp>_<index>_<n>_...: Tune's naming
    for i in range(len(parts) - 1):
        if (len(parts[i]) == 5 and all(c in "0123456789abcdef" for c in parts[i])
                and len(parts[i + 1]) == 5 and parts[i + 1].isdigit()):
            return f"{parts[i]}_{parts[i + 1]}"
    return d.name


def _full_config(d: dict) -> dict:
    """The trial's fields with TrialConfig's defaults filled in (raw dict if it is invalid)."""
    try:
        return TrialConfig.from_dict(d).to_dict()
    except ValueError:
        return d


def load_study(path: str | Path) -> pd.DataFrame:
    """One row per trial: identity, config, state, final/best metrics, provenance."""
    rows, statuses = [], tune_statuses(path)
    for d in trial_dirs(path):
        params = json.loads((d / "params.json").read_text())
        cfg = _full_config(flatten_trial(params))
        raw = read_results(d)
        results = epoch_rows(raw)
        last = results[-1] if results else {}
        evals = [r for r in results if "test_top1" in r]
        final = evals[-1] if evals else {}
        trial_id = _trial_id(d, raw)
        row = {"study": Path(path).name, "trial_id": trial_id, "trial_dir": str(d),
               "status": trial_state(results, d, statuses.get(trial_id)),
               "epochs_done": last.get("epoch", 0),
               # every row, retried epochs included: the compute the trial really used
               "train_time_s": sum(r.get("train_time_s", 0.0) for r in raw),
               "train_images_per_s": last.get("train_images_per_s"), **cfg}
        row.update({k: final.get(k, last.get(k)) for k in _FINAL_KEYS})
        for k in ("s", "max_m", "lam", "gamma"):   # the values used, not None = "default"
            if row.get(f"hp_{k}") is not None:
                row[k] = row[f"hp_{k}"]
        row["final_top1"] = final.get("test_top1") if row["status"] == "terminated" else None
        row["best_top1_test_selected"] = last.get("best_test_top1")
        rows.append(row)
    return pd.DataFrame(rows)


def load_curves(path: str | Path) -> pd.DataFrame:
    """Per-epoch metrics of every trial, long format (trial_id, epoch, metric, value)."""
    rows = []
    for d in trial_dirs(path):
        for r in epoch_rows(read_results(d)):
            for k, v in r.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "epoch":
                    rows.append({"trial_id": r.get("trial_id", d.name), "epoch": r.get("epoch"),
                                 "metric": k, "value": v})
    return pd.DataFrame(rows, columns=["trial_id", "epoch", "metric", "value"])


def summary_table(df: pd.DataFrame, value: str = "final_top1") -> pd.DataFrame:
    """mean, std (ddof=1, the sample std over seeds) and n of ``value`` per configuration."""
    keys = [k for k in ("method", "dataset", "imb_type", "ratio") if k in df]
    done = df[df["status"] == "terminated"]
    if done.empty:
        return pd.DataFrame(columns=[*keys, "mean", "std", "n"])
    g = done.groupby(keys, sort=False)[value]
    return g.agg(mean="mean", std=lambda s: s.std(ddof=1), n="count").reset_index()
