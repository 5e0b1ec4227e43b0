"""``python -m analysis report STUDY [--out DIR]``: report.html (self-contained), report.md
and LaTeX tables, with figures, for whatever the study holds (verdicts, mean ± std per
configuration, Table I-III layouts, λ sweeps, margin grids, curves, per-class accuracy).

Expected failures (no such folder, not a study, no trials yet, unwritable output, a missing
optional package, bad arguments) exit 2 with one line ``python -m analysis: error: ...``.
"""
from __future__ import annotations

import argparse
import functools
import html
import sys
from pathlib import Path

import pandas as pd

from analysis import cost, diagnostics, embedding, fingerprints, page, plots, summary, tables
from analysis.collect import load_curves, load_derived, load_study, study_runs
from trainables.cli import OneLineParser, folder_problem
from trainables.methods import ELM_FAMILY
from trainables.ray_layer.tune_files import STATE_GLOB
from trainables.store import STUDY_FILE, StudyFolder, has_study_file

PROG = "python -m analysis"

CAPTIONS = {
    "lambda_ablation": "Does ELM beat LDAM, and for which λ? Points above the dashed LDAM "
                       "band (mean ± std) are λ values where ELM wins; error bars are the "
                       "std over seeds.",
    "margin_scale": "Which largest margin M and scale s work best? Brighter cells are higher "
                    "top-1; a flat map means the result does not depend on them.",
    "curves": "Did every method converge? Look for the jump in test top-1 when DRW starts "
              "and for curves still rising at the last epoch (too short a schedule).",
    "curves_train": "Did training settle? The training loss per epoch (mean ± std over "
                    "seeds). Test top-1 was evaluated once per trial (eval_every), so it has "
                    "no curve here: its numbers are in the tables. A loss still falling at "
                    "the last epoch means too short a schedule; a step where the LR decays "
                    "and DRW starts is expected (re-weighting towards the tail classes can "
                    "raise the loss).",
    "per_class": "Where does the gain come from? Classes run from the most to the fewest "
                 "training images; a margin loss should lift the right-hand (tail) classes "
                 "without losing the head ones.",
    "shots": "Rare vs frequent classes: the few-shot bars show whether a method helps the "
             "tail, the many-shot bars what it costs on the head.",
    "reliability": "Are the predicted probabilities honest? Bars are the accuracy of the test "
                   "images in each of 15 confidence bins (softmax of the logits the loss "
                   "trains); bars below the diagonal are over-confidence. ECE is the "
                   "image-weighted gap, seeds pooled.",
    "confusion": "Where do the errors go? Rows are true classes, columns predictions, both "
                 "ordered from the largest training class to the smallest; each row sums to "
                 "1 (its diagonal cell is the class's recall). Mass left of the diagonal in "
                 "the lower rows is tail images taken for head classes.",
    "precision_recall_vs_size": "Tail recall bought with head precision? Per-class "
                                "precision and recall (mean over seeds) against the class's "
                                "training size: a re-balancing method lifts recall on the "
                                "left and pays with precision there.",
    "embedding": "What the network learned to see (the paper's Figure 3): UMAP (umap-learn, "
                 "15 neighbours, min_dist 0.1, random_state 0) of the 64-d penultimate-layer "
                 "features of up to 2,000 training images (a fixed random subset, no "
                 "augmentation), from each method's final checkpoint of its lowest seed; one "
                 "colour per class. Tight, separate clusters for the tail classes are what a "
                 "margin loss is meant to give.",
}


class AnalysisError(Exception):
    """An expected failure: reported as one line, exit 2."""


def check_study(study: Path, folder: StudyFolder) -> None:
    """A folder that holds a study with trials (``folder``: the study, read as it is asked)."""
    if not study.exists():
        raise AnalysisError(f"study folder not found: {study}")
    if not study.is_dir():
        raise AnalysisError(f"not a folder: {study} (pass a study folder, e.g. "
                            "results/quickstart)")
    if folder.trials:
        return
    if has_study_file(study) or any(study.glob(STATE_GLOB)):
        raise AnalysisError(f"study {study} holds no trials yet (none has started)")
    raise AnalysisError(f"{study} is not a study folder: no {STUDY_FILE} and no trial folder "
                        "with params.json (pass a folder under results/, e.g. "
                        "results/quickstart)")


def check_packages() -> None:
    """The report's optional packages, before anything is written (pandas imports them late,
    which would leave a half-written report)."""
    import importlib
    for name in ("jinja2", "tabulate"):      # Styler, to_markdown
        try:
            importlib.import_module(name)
        except ImportError:
            raise AnalysisError(f"missing optional package '{name}' (pip install {name}; "
                                "see requirements.txt)") from None


def check_out(out: Path) -> None:
    """Create the output folder and prove it writable before any work."""
    problem = folder_problem(out)
    if problem:
        raise AnalysisError(f"cannot write the report to {out}: {problem[1]}")


def _figures(df, curves, out, colours, study, trials=None) -> list[tuple[str, Path, str]]:
    """(title, png, caption) of each figure the study has data for; ``trials``: the study's
    own trials (no derived rows), whose checkpoints the feature embedding reads."""
    figs = []
    col = lambda name: df[name] if name in df else pd.Series(dtype=object)  # noqa: E731
    if col("loss").isin(ELM_FAMILY).any() and col("lam").nunique() >= 2:
        figs.append(("λ ablation", plots.lambda_ablation(df, out / "lambda_ablation",
                                                           colours=colours)))
    if col("max_m").nunique() > 1 and col("s").nunique() > 1:
        figs.append(("Largest margin M × scale s", plots.margin_scale_heatmap(
            df, out / "margin_scale")))
    drawn = plots.curve_metrics(curves) if len(curves) else []
    if drawn:     # "curves_train": test top-1 was evaluated once a trial, so only the loss
        stem = "curves" if "test_top1" in drawn else "curves_train"
        figs.append(("Learning curves", plots.learning_curves(curves, df, out / stem,
                                                              metric=drawn, colours=colours)))
    if "test_per_class" in df and df["test_per_class"].notna().any():
        figs.append(("Per-class accuracy by class size",
                     plots.per_class_vs_size(df, out / "per_class", colours=colours)))
        figs.append(("Many / medium / few-shot accuracy",
                     plots.shot_groups(df, out / "shots", colours=colours)))
    titles = {"reliability": "Reliability diagrams", "confusion": "Confusion matrices",
              "precision_recall_vs_size": "Per-class precision and recall by class size"}
    figs += [(titles[p.stem], p) for p in diagnostics.report_figures(study, out, colours)]
    emb = embedding.report_embedding(trials, out) if trials is not None else None
    if emb is not None:
        figs.append(("Feature embedding (UMAP)", emb))
    return [(t, p, CAPTIONS[p.stem]) for t, p in figs]


def _summary_latex(shown, best, caption: str) -> str:
    return tables.latex_table(shown.drop(columns=["Status"]), best.drop(columns=["Status"]),
                              caption, index=False)


def _markdown_summary(shown, best, incomplete) -> str:
    md = shown.mask(best, "**" + shown + "**")
    md["Status"] = ["⚠ incomplete" if bad else "" for bad in incomplete]
    return md.to_markdown(index=False, disable_numparse=True)


def _header(study: Path, df: pd.DataFrame, derived: pd.DataFrame) -> str:
    counts = df["status"].value_counts().to_dict()
    commits = ", ".join(sorted(set(df["git_commit"].dropna().astype(str)))) or "unknown"
    extra = (f"; {len(derived)} rows derived from them without a trial of their own "
             f"({', '.join(dict.fromkeys(derived['method']))})" if len(derived) else "")
    spent = cost.cost_lines(df)
    spent = f"; {spent[0][0].lower()}{spent[0][1:]}" if spent else ""
    return (f"{len(df)} trials: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            + extra + f"; code {commits}{spent}.")


def _data_and_cost(df: pd.DataFrame, derived: pd.DataFrame, md: list, sections: list) -> None:
    """The report's "Data" (fingerprint per setting, disagreements flagged) and "Cost"
    (device-hours per method and for the study) sections, appended to ``md``/``sections``."""
    prints = fingerprints.fingerprint_table(df)
    flagged = fingerprints.disagreements(df)
    if len(prints):
        warn = ("**Settings whose trials trained on different data:** " + " ".join(
            f"{line}." for line in flagged)) if flagged else ""
        md += ["## Data", "", fingerprints.FINGERPRINT_NOTE, "", *([warn, ""] if warn else []),
               prints.to_markdown(index=False, disable_numparse=True), ""]
        sections.append(("data", "Data", f'<p class="note">'
                         f"{html.escape(fingerprints.FINGERPRINT_NOTE)}</p>"
                         + (f'<p class="note against">{html.escape(warn)}</p>' if warn else "")
                         + page.styled_table(prints, cls="data", uid="data")))
    spent = cost.cost_display(pd.concat([df, derived], ignore_index=True)
                              if len(derived) else df)
    if len(spent):
        md += ["## Cost", "", cost.COST_NOTE, "",
               spent.to_markdown(index=False, disable_numparse=True), ""]
        sections.append(("cost", "Cost", f'<p class="note">{html.escape(cost.COST_NOTE)}</p>'
                         + page.styled_table(spent, cls="cost", uid="cost")))


def _layout_tables(df, out) -> list[tuple[str, str, pd.DataFrame]]:
    """Table I-III layouts the study has cells for: (id, title, frame); files beside."""
    found = []
    cifar = df[df["dataset"].isin(["cifar10", "cifar100"])]
    if len(cifar):
        frame = tables.table1_frame(cifar)
        (out / "table1.tex").write_text(tables.to_latex(frame, "Imbalanced CIFAR (ours)"))
        frame.to_csv(out / "table1.csv")
        tables.side_by_side(cifar).to_csv(out / "vs_paper.csv", index=False)
        found.append(("table1", "Table I layout (best mean per column in bold)", frame))
    for dataset, title in (("imagenet_lt", "Table II layout (ImageNet-LT)"),
                           ("places_lt", "Table III layout (Places-LT)")):
        if (df["dataset"] == dataset).any():
            frame = tables.large_scale_frame(df, dataset).astype(object).fillna("–")
            frame.to_csv(out / f"{dataset}_table.csv")
            found.append((dataset, title + ": final-epoch top-1/3/5, the paper's beside",
                          frame))
    return found


def build_report(study, out=None) -> Path:
    study = Path(study)
    damage: list[str] = []        # one line per damaged file: printed, and a section
    folder = StudyFolder(study, damage)   # every file read once (when first asked), for all
    check_study(study, folder)
    check_packages()
    out = Path(out) if out else study / "report"
    check_out(out)
    df, curves = load_study(folder), load_curves(folder)
    if df.empty:
        raise AnalysisError(f"study {study} holds no trials yet (none has started)")
    try:                                   # before anything is written
        if embedding.panel_trials(df):
            embedding.require_umap()
    except embedding.MissingPackage as e:
        raise AnalysisError(str(e)) from None
    derived = load_derived(folder, df)    # cRT/LWS runs, post-hoc LA / τ-norm: extras
    with_derived = pd.concat([df, derived], ignore_index=True) if len(derived) else df
    shown, means, incomplete = summary.summary(with_derived)
    best = summary.best_mask(shown, means) if len(shown) else None
    verdicts = summary.verdicts(df)
    verdicts.to_csv(out / "verdicts.csv", index=False)
    rule = summary.verdict_note(verdicts)       # the test, the family and what it can call
    against = summary.reversals(df)             # the paper's every-setting orderings, reversed
    verdicts = summary.verdict_display(verdicts)
    figs = _figures(with_derived, curves, out, plots.study_colours(with_derived), folder,
                    trials=df)
    layouts = _layout_tables(df, out)
    header = _header(study, df, derived)
    scope = summary.scope_note(df)              # a short study says what it cannot show
    if scope:
        header = f"{header}\n\n{scope}"
    md = [f"# Study `{study.name}`", "", header, "", "## Verdicts", ""]
    md += [verdicts.to_markdown(index=False, disable_numparse=True) + "\n\n" + rule
           if len(verdicts) else "No pair of methods ran with the same seeds.", ""]
    if against:
        md += ["**Against the paper.** " + " ".join(against), ""]
    against_html = ('<p class="note against"><b>Against the paper.</b> '
                    + html.escape(" ".join(against)) + "</p>") if against else ""
    sections = [("verdicts", "Verdicts", page.styled_table(verdicts, cls="verdicts",
                                                           uid="verdicts")
                 + f'<p class="note">{html.escape(rule)}</p>' + against_html
                 if len(verdicts) else "<p>No pair of methods ran with the same seeds.</p>"
                 + against_html)]
    if len(shown):
        shown.to_csv(out / "summary.csv", index=False)
        (out / "summary.tex").write_text(_summary_latex(
            shown, best, f"Study {study.name}: test top-1 (%), mean ± std over seeds"))
        note = ("Mean ± std over seeds (sample std, ddof=1) of the final epoch; best mean "
                "of each column within a setting in bold (ECE: lowest; a best mean, not a "
                "tested winner: the verdicts say which differences the seeds support); “–”: the method has no "
                "such parameter or the metric was not measured.")
        note += summary.val_selected_note(shown)
        if len(derived):
            note += (" Rows with “+ cRT”, “+ LWS”, “post-hoc LA” or “τ-norm” are derived "
                     "from the study's trials without retraining the backbone (τ* per seed, "
                     "chosen on the validation split, never on test).")
        flag = (" Highlighted rows are incomplete: fewer seeds finished than planned."
                if incomplete.any() else "")
        md += ["## Mean ± std per configuration", "", note + flag, "",
               _markdown_summary(shown, best, incomplete), ""]
        sections.append(("summary", "Mean ± std per configuration",
                         f'<p class="note">{html.escape(note)}<span class="flag">'
                         f"{html.escape(flag)}</span></p>"
                         + page.styled_table(shown, best=best, incomplete=incomplete,
                                             cls="summary", uid="summary")))
    _data_and_cost(df, derived, md, sections)
    runs = study_runs(folder, df)
    if damage:        # named, not fatal: the report is built from the intact files
        for line in damage:
            print(line, file=sys.stderr, flush=True)
        note = "Skipped while reading the study (the rest of this report is built without them):"
        md += ["## Damaged files", "", note, "", *(f"- `{line}`" for line in damage), ""]
        sections.append(("damaged", "Damaged files", f'<p class="note">{html.escape(note)}</p>'
                         "<ul>" + "".join(f"<li><code>{html.escape(line)}</code></li>"
                                          for line in damage) + "</ul>"))
    if len(runs):     # provenance: which run (and study file) added which trials
        md += ["## Runs", "", runs.to_markdown(index=False), ""]
        sections.append(("runs", "Runs", page.styled_table(runs.astype(str), cls="runs",
                                                           uid="runs")))
    for sid, title, frame in layouts:
        md += [f"## {title}", "", tables.to_markdown(frame), ""]
        sections.append((sid, title, tables.to_html(frame)))
    for title, png, caption in figs:
        md += [f"## {title}", "", f"![{title}]({png.name})", "", f"*{caption}*", ""]
    sections.append(("figures", "Figures", "".join(page.figure_html(t, p, c)
                                                   for t, p, c in figs)))
    (out / "report.md").write_text("\n".join(md))
    (out / "report.html").write_text(page.page(f"Study {study.name}", header, sections))
    return out


def main(argv=None) -> int:
    hint = f" (see {PROG} --help)"
    p = OneLineParser(prog=PROG, hint=hint,
                      description="Reports on a study folder written by elm-study.")
    sub = p.add_subparsers(dest="command", required=True,
                           parser_class=functools.partial(OneLineParser, hint=hint,
                                                             error_prog=PROG))
    r = sub.add_parser("report", help="write report.html / report.md / LaTeX for a study")
    r.add_argument("study", help="the study folder, e.g. results/quickstart")
    r.add_argument("--out", help="output folder (default: STUDY/report)")
    ph = sub.add_parser("posthoc", add_help=False, help="post-hoc logit adjustment and "
                        "τ-normalisation from final checkpoints (python -m analysis posthoc "
                        "--help)")
    ph.add_argument("args", nargs=argparse.REMAINDER)
    args, rest = p.parse_known_args(argv)
    if args.command == "posthoc":             # its own options: analysis.posthoc parses them
        from analysis.posthoc import main as posthoc_main
        return posthoc_main([*rest, *args.args])
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        out = build_report(args.study, args.out)
    except AnalysisError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    print(f"report: {out / 'report.html'}\n        {out / 'report.md'}")
    return 0
