"""The analysis says each thing once (issue 39): one mean ± std, one bold rule, one LaTeX
writer, and no matplotlib settings changed by importing the package."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd

from analysis import tables
from analysis.formats import best_cells, mean_std


def test_mean_std_one_rule():
    assert mean_std(71.2345, 0.351, 3) == "71.23 ± 0.35"
    assert mean_std(71.2345, 0.351, 1) == "71.23"                 # one seed: no std
    assert mean_std(71.2345, math.nan, 3) == "71.23"              # no std: the mean alone
    assert mean_std(70.7, 0.2) == "70.70 ± 0.20"                  # n unknown (the paper's)
    assert mean_std(None, 1.0, 3) == mean_std(math.nan) == mean_std(pd.NA) == "–"
    assert mean_std(5.0, 0.25, 2, width=6) == "  5.00 ± 0.25"     # console columns
    assert mean_std(None, width=6) == "     –"


def test_bold_rule_ties_on_the_shown_rounding_per_group_and_lower_is_better():
    means = pd.DataFrame({"top1": [70.001, 70.004, 69.0, 50.0],
                          "ece": [3.0, 2.004, 2.001, 9.0]})
    whole = best_cells(means)
    assert list(whole["top1"]) == [True, True, False, False]     # 70.00 = 70.00: both bold
    assert list(whole["ece"]) == [False, False, False, True]     # highest unless lower
    grouped = best_cells(means, ["a", "a", "a", "b"], lower={"ece"})
    assert list(grouped["ece"]) == [False, True, True, True]     # lowest, per setting
    assert list(grouped["top1"]) == [True, True, False, True]
    assert not best_cells(pd.DataFrame({"x": [math.nan, math.nan]}))["x"].any()


def test_tables_bold_every_tied_best_mean():
    rows = [{"method": m, "dataset": "cifar10", "imb_type": "lt", "ratio": 100.0, "seed": s,
             "status": "terminated", "final_top1": v}
            for m, vals in (("CE", (70.0, 72.0)), ("LDAM", (71.0, 71.0)), ("Focal", (60, 61)))
            for s, v in enumerate(vals)]
    frame = tables.table1_frame(pd.DataFrame(rows))
    md = tables.to_markdown(frame)
    assert md.count("**71.00") == 2 and "**60.50" not in md       # CE and LDAM tie at 71.00
    assert tables.to_latex(frame).count(r"\textbf{71.00") == 2
    flat = frame.reset_index()                   # the report's layout: no index, l then c
    bold = pd.concat([pd.Series(False, name="method"), tables.bold_mask(frame).reset_index(
        drop=True)], axis=1)
    tex = tables.latex_table(flat, bold, "ρ & λ", index=False)
    assert tex.count(r"\textbf{71.00") == 2 and r"\begin{tabular}{lc}" in tex
    assert r"$\rho$ \& $\lambda$" in tex


def test_importing_the_analysis_leaves_matplotlib_settings_alone():
    code = ("import matplotlib; before = dict(matplotlib.rcParams)\n"
            "import analysis.style, analysis.plots, analysis.diagnostics, analysis.embedding\n"
            "import analysis.report\n"
            "after = dict(matplotlib.rcParams)\n"
            # the backend included: figures draw on their own Agg canvas (style.figure)
            "print(sorted(k for k in before if before[k] != after[k]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2]).stdout
    assert out.strip() == "[]"


def test_figures_get_the_style_and_give_the_settings_back(tmp_path):
    import matplotlib

    from analysis import plots, style
    before = dict(matplotlib.rcParams)
    seen = {}

    @style.styled
    def draw():
        seen["size"] = matplotlib.rcParams["font.size"]
        return plots.effective_margins({"a": [0.1, 0.2, 0.3]}, tmp_path / "em")

    assert draw().exists() and seen["size"] == style.RC["font.size"]
    assert dict(matplotlib.rcParams) == before
