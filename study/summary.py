"""A study's console summaries, read from its storage folder (no Ray): ``elm-study status``
and the table printed when a run ends."""
from __future__ import annotations

import sys
from pathlib import Path

from trainables.store import FINISHED, StudyRecord


def status_counts(path) -> tuple:
    """(one row per trial, {status: count}); each damaged file of the study is named once, on
    stderr (``damaged: PATH: what``), and the intact trials are counted."""
    from analysis.collect import load_study
    damage: list[str] = []
    df = load_study(path, damage=damage)
    for line in damage:
        print(line, file=sys.stderr, flush=True)
    counts = df["status"].value_counts().to_dict() if len(df) else {}
    return df, counts


def print_status(path, study: StudyRecord, loaded: tuple | None = None) -> None:
    """Trial counts, each run's additions, epochs done and the best trial so far
    (``loaded``: status_counts(path) when the caller has it already)."""
    df, counts = loaded or status_counts(path)
    expected = study.expected_trials
    pending = max((expected or 0) - len(df), 0)
    parts = [f"{k} {v}" for k, v in sorted(counts.items())] + ([f"not started {pending}"]
                                                               if pending else [])
    print(f"study {study.name} ({study.space}): {len(df)}/{expected} trials seen; "
          + ", ".join(parts))
    for r in study.runs:
        mine = df[df["run"] == r.run] if len(df) else df
        extra = "".join(f", {n} {w}" for n, w in ((r.kept, "kept"), (
            r.unfinished_elsewhere, "left to earlier runs")) if n)
        print(f"  run {r.run} ({r.started_at or '?'}, {Path(r.source or '?').name}"
              f"): added {r.launched}{extra}; finished "
              f"{int(mine['status'].isin(FINISHED).sum()) if len(mine) else 0}")
    if len(df):
        epochs = df.get("epochs")
        if epochs is not None and expected:
            done = df["epochs_done"].fillna(0).sum()
            total = float(epochs.fillna(0).max()) * expected
            print(f"progress: {done:.0f}/{total:.0f} epochs ({100 * done / max(total, 1):.1f}%)")
        best = df.dropna(subset=["best_top1_test_selected"])
        if len(best):
            row = best.loc[best["best_top1_test_selected"].idxmax()]
            print(f"best so far: {row['best_top1_test_selected']:.2f} top-1 (test-selected) — "
                  f"{row['method']} seed {row.get('seed')} [{row['trial_id']}]")
    from analysis.cost import cost_lines
    for line in cost_lines(df):     # device-hours per method and for the study
        print(line)


def report(path, study: StudyRecord) -> int:
    """Print the per-method mean ± std table; exit 1 if any trial errored or is unfinished."""
    from analysis.collect import summary_table
    df, counts = loaded = status_counts(path)
    print()
    print_status(path, study, loaded)
    table = summary_table(df)
    if len(table):
        print("\nfinal-epoch test top-1 (mean ± std over seeds, n):")
        from analysis.formats import mean_std
        from trainables.data.registry import setting_label
        for _, r in table.iterrows():
            print(f"  {r['method']:<22s} {setting_label(r['dataset'], r['imb_type'], r['ratio'])}"
                  f"  {mean_std(r['mean'], r['std'], r['n'], width=6)}  (n={r['n']})")
    print(f"\nresults: {path}")
    bad = counts.get("errored", 0) + counts.get("running", 0)
    return 1 if bad else 0
