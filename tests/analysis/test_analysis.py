"""Analysis on a real small study (Ray, synthetic data), built once per test session."""
import json
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import plots, tables
from analysis.aggregate import aggregate, paired_difference
from analysis.collect import load_curves, load_study, read_results, trial_dirs
from trainables.methods import TABLE1_METHODS, label_of

REPO = Path(__file__).resolve().parents[2]
COLUMNS = ["study", "trial_id", "status", "method", "dataset", "imb_type", "ratio", "loss",
           "drw", "lam", "max_m", "s", "run", "trial_key", "seed", "data_seed", "epochs_done",
           "final_top1", "best_top1_test_selected", "test_top3", "test_top5", "test_many",
           "test_medium", "test_few", "test_per_class", "train_time_s", "train_images_per_s",
           "node", "package_version", "git_commit"]


def test_load_study_has_one_row_per_trial_with_the_columns(study):
    df = load_study(study)
    assert len(df) == 12 and set(df["status"]) == {"terminated"}
    assert not set(COLUMNS) - set(df.columns), set(COLUMNS) - set(df.columns)
    assert set(df["method"]) == {"CE", "LDAM", "ELM (λ=0.1)", "ELM (λ=1.0)"}
    margin = df[df["loss"] != "ce"]
    assert margin["s"].eq(30.0).all() and margin["max_m"].eq(0.5).all()  # resolved, not None


def test_means_and_stds_equal_hand_computation_from_result_files(study):
    by_method = {}
    for d in trial_dirs(study):
        last = read_results(d)[-1]
        by_method.setdefault(last["method"], []).append(last["test_top1"])
    agg = aggregate(load_study(study), "final_top1").set_index("method")
    for m, vals in by_method.items():
        assert agg.loc[m, "mean"] == pytest.approx(np.mean(vals))
        assert agg.loc[m, "std"] == pytest.approx(np.std(vals, ddof=1))
        assert agg.loc[m, "n"] == 3 and not agg.loc[m, "incomplete"]
    pop = aggregate(load_study(study), "final_top1", ddof=0).set_index("method")
    m, vals = next(iter(by_method.items()))
    assert pop.loc[m, "std"] == pytest.approx(np.std(vals, ddof=0))


def test_partial_and_killed_study_loads_with_statuses(study, tmp_path):
    copy = tmp_path / "partial"
    shutil.copytree(study, copy)
    dirs = trial_dirs(copy)
    ids = [read_results(d)[-1]["trial_id"] for d in dirs]
    # the driver was killed: Tune's state still says RUNNING for the first three trials
    (state,) = copy.glob("experiment_state-*.json")
    data = json.loads(state.read_text())
    for entry in data["trial_data"]:
        trial = json.loads(entry[0])
        if trial["trial_id"] in ids[:3]:
            trial["status"] = "RUNNING"
        entry[0] = json.dumps(trial)
    state.write_text(json.dumps(data))
    (dirs[0] / "result.json").write_text("")                       # started, nothing reported
    first = json.loads((dirs[1] / "result.json").read_text().splitlines()[0])
    first["status"], first["done"] = "running", False
    (dirs[1] / "result.json").write_text(json.dumps(first) + "\n" + '{"torn": ')
    (dirs[2] / "error.txt").write_text("boom")
    (dirs[2] / "result.json").write_text("")
    df = load_study(copy).set_index("trial_dir")
    assert df.loc[str(dirs[0]), "status"] == "running"
    assert df.loc[str(dirs[1]), "status"] == "running"
    assert df.loc[str(dirs[2]), "status"] == "errored"
    agg = aggregate(df.reset_index(), "final_top1")
    assert agg["incomplete"].any() and (agg["n"] <= 3).all()
    # Tune TERMINATED a trial before its last epoch (as ASHA does): stopped, not running
    first = json.loads((dirs[3] / "result.json").read_text().splitlines()[0])
    first["status"], first["done"] = "running", False                # (the study has 1 epoch)
    (dirs[3] / "result.json").write_text(json.dumps(first) + "\n")
    df = load_study(copy).set_index("trial_dir")
    assert df.loc[str(dirs[3]), "status"] == "stopped"
    assert df.loc[str(dirs[0]), "status"] == "running"


def test_table1_puts_each_value_in_its_cell():
    rows = []
    for i, m in enumerate(TABLE1_METHODS):
        for j, (d, t, r) in enumerate(tables.TABLE1_COLUMNS):
            for seed, delta in ((0, -1.0), (1, 1.0)):
                rows.append({"method": label_of(m), "dataset": d, "imb_type": t, "ratio": r,
                             "seed": seed, "status": "terminated",
                             "final_top1": 10 * i + j + 0.01 + delta})
    frame = tables.table1_frame(pd.DataFrame(rows))
    assert list(frame.index) == [label_of(m) for m in TABLE1_METHODS]
    assert list(frame.columns) == [tables.column_label(c) for c in tables.TABLE1_COLUMNS]
    for i, m in enumerate(frame.index):
        for j, c in enumerate(frame.columns):
            assert frame.loc[m, c] == f"{10 * i + j + 0.01:.2f} ± {math.sqrt(2):.2f}"
    md = tables.to_markdown(frame)
    assert md.count("**") == 2 * 8                         # the best of each column in bold
    assert f"**{10 * 19 + 7 + 0.01:.2f} ± 1.41**" in md      # last row, last column is the best
    tex = tables.to_latex(frame, "CIFAR 100% & #1")
    assert r"\toprule" in tex and r"\bottomrule" in tex
    assert tex.count(r"\textbf{") == 8 and rf"\textbf{{{10 * 19 + 7 + 0.01:.2f} $\pm$ 1.41}}" in tex
    assert r"100\% \& \#1" in tex and r"$\lambda$" in tex    # escaped, λ in math mode
    styled = tables.to_html(frame)      # one CSS rule whose selectors are the 8 best cells
    assert styled.count("font-weight: bold") == 1
    assert len(re.findall(r"#T_\w+_row19_col7\b", styled)) == 1
    assert len(re.findall(r"#T_\w+_row\d+_col\d+", styled)) == 8


def test_side_by_side_with_the_paper():
    df = pd.DataFrame([{"method": "CE", "dataset": "cifar10", "imb_type": "lt", "ratio": 100.0,
                        "seed": s, "status": "terminated", "final_top1": v}
                       for s, v in ((0, 70.5), (1, 70.9))])
    row = tables.side_by_side(df).iloc[0]
    assert row["paper_mean"] == 70.71 and row["diff"] == pytest.approx(70.7 - 70.71)
    assert bool(row["agree"])


def test_paired_difference(study):
    r = paired_difference(load_study(study), "ELM (λ=1.0)", "ELM (λ=0.1)")
    assert r["n_pairs"] == 3 and r["ci_low"] <= r["mean_diff"] <= r["ci_high"]


def test_every_plot_writes_a_png(study, tmp_path):
    df, curves = load_study(study), load_curves(study)
    sweep = pd.concat([df.assign(max_m=m, s=s, final_top1=df["final_top1"] + m + s / 100)
                       for m in (0.1, 0.5) for s in (10.0, 30.0)])
    pngs = [plots.lambda_ablation(df, tmp_path / "lam"),
            plots.margin_scale_heatmap(sweep, tmp_path / "ms"),
            plots.per_class_vs_size(df, tmp_path / "pc"),
            plots.shot_groups(df, tmp_path / "shots"),
            plots.learning_curves(curves, df, tmp_path / "curves"),
            plots.effective_margins({"a": np.random.default_rng(0).normal(size=200)},
                                    tmp_path / "em"),
            plots.embedding(np.random.default_rng(0).normal(size=(60, 8)),
                            np.arange(60) % 3, tmp_path / "emb")]
    for p in pngs:
        assert p.exists() and p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG"
        assert p.with_suffix(".pdf").exists()


def test_effective_margins_from_a_checkpoint(study):
    from analysis.margins import effective_margins, latest_checkpoint
    df = load_study(study)
    row = df[(df["loss"] == "elm") & (df["lam"] == 1.0)].iloc[0]
    em = effective_margins(latest_checkpoint(row["trial_dir"]))
    assert em.ndim == 1 and len(em) > 100
    assert (em <= 0.5 + 1e-6).all() and (em >= 0.5 * (1 / 10) ** 0.25 - 0.5 - 1e-6).all()


def test_report_writes_markdown_and_html(report):
    out = report
    md = (out / "report.md").read_text()
    assert "ELM (λ=1.0) vs LDAM" in md and "λ ablation" in md and "| LDAM " in md
    assert (out / "report.html").exists() and (out / "lambda_ablation.png").exists()


def test_report_has_derived_rows_f1_ece_columns_and_diagnostics(study, tmp_path):
    """cRT and post-hoc rows derived from the CE trials join the report's summary as methods
    of their own (numbers = the stage-2 results), with macro-F1 and ECE columns (ECE: lowest
    in bold), and the reliability / confusion / precision-recall figures are drawn."""
    from analysis import posthoc
    from analysis.report import build_report
    from trainables import decoupled
    s = tmp_path / "mini"
    shutil.copytree(study, s)
    assert len(decoupled.run_for_study(str(s), "crt")) == 3          # one per CE seed
    rows, _ = posthoc.run(str(s))
    out = build_report(s, tmp_path / "rep")
    table = pd.read_csv(out / "summary.csv", dtype=str).set_index("Method")
    crt = [[r for r in read_results(d) if "test_top1" in r][-1]["test_top1"]
           for d in sorted((s / "decoupled").glob("*/"))]
    assert table.loc["CE + cRT", "Top-1 final (%)"] == (
        f"{np.mean(crt):.2f} ± {np.std(crt, ddof=1):.2f}")
    taus = "/".join(f"{r['tau']:g}" for r in sorted(rows, key=lambda r: r["seed"])
                    if r["method"] == "CE + post-hoc LA")
    assert table.loc[f"CE + post-hoc LA (τ*={taus})", "Seeds"] == "3"
    assert {"Macro-F1 (%)", "ECE (%)"} <= set(table.columns)
    ece = table["ECE (%)"].str.split(" ± ").str[0].astype(float)
    md = (out / "report.md").read_text()
    assert f"**{table.loc[ece.idxmin(), 'ECE (%)']}**" in md          # lowest ECE is bold
    for name in ("reliability", "confusion", "precision_recall_vs_size"):
        assert (out / f"{name}.png").exists() and (out / f"{name}.pdf").exists()
        assert f'id="fig-{name}"' in (out / "report.html").read_text()


@pytest.mark.parametrize("name", ["table1", "ablations"])
def test_notebooks_execute_headless(study, tmp_path, name):
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient
    nb = nbformat.read(REPO / "analysis" / "notebooks" / f"{name}.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")  # committed bare
    os.environ["ELM_STUDY"], os.environ["ELM_FIGURES"] = str(study), str(tmp_path)
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        os.environ.pop("ELM_STUDY"), os.environ.pop("ELM_FIGURES")
    assert list(tmp_path.glob("*.png")), "the notebook drew no figure"
