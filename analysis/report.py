"""``python -m analysis report STUDY [--out DIR]``: report.md + report.html with tables and
figures for whatever the study holds (Table I cells, λ sweeps, margin grids, curves...)."""
from __future__ import annotations

import argparse
import html
import sys
from pathlib import Path

import pandas as pd

from analysis import plots, tables
from analysis.aggregate import aggregate, config_keys
from analysis.collect import load_curves, load_study


def _md_table(df: pd.DataFrame, floatfmt: str = "{:.2f}") -> str:
    def fmt(v):
        if isinstance(v, float):
            return "–" if pd.isna(v) else floatfmt.format(v)
        return str(v)
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "---|" * len(df.columns)
    return "\n".join([head, sep] + ["| " + " | ".join(fmt(v) for v in row) + " |"
                                    for row in df.itertuples(index=False)])


def build_report(study, out=None) -> Path:
    study = Path(study)
    out = Path(out) if out else study / "report"
    out.mkdir(parents=True, exist_ok=True)
    df, curves = load_study(study), load_curves(study)
    if df.empty:
        raise ValueError(f"{study} holds no trials")
    md = [f"# Study `{study.name}`", ""]
    counts = df["status"].value_counts().to_dict()
    commits = ", ".join(sorted(set(df["git_commit"].dropna().astype(str)))) or "unknown"
    md += [f"{len(df)} trials: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
           + f"; code {commits}.", ""]
    keys = config_keys(df)
    agg = aggregate(df, "final_top1", keys=keys)
    if len(agg):
        show = agg.drop(columns=["seeds"]).rename(columns={"mean": "final top-1",
                                                           "std": "std", "n": "seeds"})
        extra = [("best_top1_test_selected", "best-epoch top-1 (test-selected)"),
                 ("test_many", "many"), ("test_medium", "medium"), ("test_few", "few")]
        for value, name in extra:     # merged on the keys: a group may lack a value (NaN)
            part = aggregate(df, value, keys=keys)[[*keys, "mean"]].rename(
                columns={"mean": name})
            show = show.merge(part, on=keys, how="left")
        md += ["## Final-epoch test top-1 (mean ± std over seeds, ddof=1)", "",
               _md_table(show), ""]
        if agg["incomplete"].any():
            md += ["Rows with `incomplete = True` have fewer seeds than planned.", ""]
    cifar = df[df["dataset"].isin(["cifar10", "cifar100"])]
    if len(cifar):
        frame = tables.table1_frame(cifar)
        md += ["## Table I layout", "", tables.to_markdown(frame), ""]
        (out / "table1.tex").write_text(tables.to_latex(frame, "Imbalanced CIFAR (ours)"))
        frame.to_csv(out / "table1.csv")
        sbs = tables.side_by_side(cifar)
        md += ["## Ours vs. the paper", "", _md_table(sbs), ""]
        sbs.to_csv(out / "vs_paper.csv", index=False)
    for dataset, title in (("imagenet_lt", "Table II layout (ImageNet-LT)"),
                           ("places_lt", "Table III layout (Places-LT)")):
        if (df["dataset"] == dataset).any():
            frame = tables.large_scale_frame(df, dataset)
            md += [f"## {title}", "", "Final-epoch test top-1/3/5, mean over seeds; the "
                   "paper's values beside.", "", _md_table(frame.reset_index()), ""]
            frame.to_csv(out / f"{dataset}_table.csv")
    figures = []
    if df["loss"].isin(["elm", "elm_wo_dy"]).any() and df["lam"].nunique() >= 2:
        figures.append(("λ ablation", plots.lambda_ablation(df, out / "lambda_ablation")))
    if df["max_m"].nunique() > 1 and df["s"].nunique() > 1:
        figures.append(("max_m × s", plots.margin_scale_heatmap(df, out / "margin_scale")))
    if len(curves):
        figures.append(("Learning curves", plots.learning_curves(curves, df, out / "curves")))
    if df["test_per_class"].notna().any():
        figures.append(("Per-class accuracy vs class size",
                        plots.per_class_vs_size(df, out / "per_class")))
        figures.append(("Many / medium / few shot", plots.shot_groups(df, out / "shots")))
    for title, png in figures:
        md += [f"## {title}", "", f"![{title}]({png.name})", ""]
    (out / "report.md").write_text("\n".join(md))
    body = "".join(f"<h2>{html.escape(t)}</h2><img src='{p.name}' style='max-width:700px'>"
                   for t, p in figures)
    tables_html = tables.to_html(tables.table1_frame(cifar)) if len(cifar) else ""
    summary = agg.drop(columns=["seeds"]).to_html(index=False, float_format="%.2f") \
        if len(agg) else ""
    (out / "report.html").write_text(
        f"<html><head><meta charset='utf-8'><title>{html.escape(study.name)}</title></head>"
        f"<body><h1>Study {html.escape(study.name)}</h1><h2>Final-epoch test top-1</h2>"
        f"{summary}{tables_html}{body}</body></html>")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report", help="write report.md / report.html for a study folder")
    r.add_argument("study")
    r.add_argument("--out")
    args = p.parse_args(argv)
    try:
        out = build_report(args.study, args.out)
    except (ValueError, FileNotFoundError) as e:
        print(f"analysis: error: {e}", file=sys.stderr)
        return 2
    print((out / "report.md").read_text())
    print(f"\nreport: {out / 'report.md'}\n        {out / 'report.html'}")
    return 0
