"""Tables in the paper's layouts (Markdown, LaTeX booktabs, CSV, HTML) and side-by-sides."""
from __future__ import annotations

import math
from importlib import resources

import pandas as pd

from analysis.aggregate import aggregate
from analysis.formats import DASH, best_cells, mean_std
from trainables.data.registry import setting_label
from trainables.methods import TABLE1_METHODS, TABLE23_METHODS, label_of

TABLE1_ROWS = [label_of(m) for m in TABLE1_METHODS]
TABLE23_ROWS = [label_of(m) for m in TABLE23_METHODS]
TABLE1_COLUMNS = [(d, t, r) for d in ("cifar10", "cifar100") for t in ("lt", "step")
                  for r in (10.0, 100.0)]
def column_label(col) -> str:
    d, t, r = col
    return setting_label(d, t, r)


def paper_table1() -> pd.DataFrame:
    """The paper's Table I values (shipped with the package), tidy."""
    with resources.files("analysis.paper_data").joinpath("table1_cifar.csv").open() as fh:
        df = pd.read_csv(fh)
    df["ratio"] = df["ratio"].astype(float)
    return df.rename(columns={"method": "method", "top1_mean": "paper_mean",
                              "top1_std": "paper_std"})


def paper_table23() -> pd.DataFrame:
    with resources.files("analysis.paper_data").joinpath("table2_3_large_scale.csv").open() as fh:
        return pd.read_csv(fh)


def table1_frame(df: pd.DataFrame, value: str = "final_top1") -> pd.DataFrame:
    """Rows = the 20 methods in the paper's order, columns = the 8 CIFAR settings, cells
    'mean ± std' over seeds ('–' where no trial finished). Extra methods go below."""
    agg = aggregate(df, value, keys=["method", "dataset", "imb_type", "ratio"])
    lookup = {(r.method, r.dataset, r.imb_type, float(r.ratio)): r for r in agg.itertuples()}
    cols = [c for c in TABLE1_COLUMNS if any(k[1:] == c for k in lookup)] or TABLE1_COLUMNS
    rows = TABLE1_ROWS + sorted({k[0] for k in lookup} - set(TABLE1_ROWS))
    data, means = {}, {}
    for c in cols:
        cells, ms = [], []
        for m in rows:
            r = lookup.get((m, *c))
            cells.append(mean_std(r.mean, r.std, r.n) if r else DASH)
            ms.append(r.mean if r else math.nan)
        data[column_label(c)], means[column_label(c)] = cells, ms
    out = pd.DataFrame(data, index=pd.Index(rows, name="method"))
    out.attrs["means"] = pd.DataFrame(means, index=out.index)
    return out


def bold_mask(frame: pd.DataFrame, bold_best: bool = True) -> pd.DataFrame:
    """True at the best mean of each column (``frame.attrs['means']``), by the one bold rule
    (analysis.formats.best_cells: highest, ties on the shown rounding all bold; a best mean,
    not a tested winner); all False without means or with ``bold_best`` off."""
    means = frame.attrs.get("means")
    if means is None or not bold_best:
        return pd.DataFrame(False, index=frame.index, columns=frame.columns)
    return best_cells(means).reindex(index=frame.index, columns=frame.columns,
                                     fill_value=False)


def to_markdown(frame: pd.DataFrame, bold_best: bool = True, index: bool = True) -> str:
    """Markdown (pandas' ``to_markdown``), the best mean of each column in bold."""
    shown = frame.astype(str).mask(bold_mask(frame, bold_best), "**" + frame.astype(str) + "**")
    return shown.to_markdown(index=index, disable_numparse=True)


def latex_text(s) -> str:
    """Plain text -> LaTeX source, math symbols in math mode; the rest is escaped by
    ``Styler.format(escape='latex-math')`` (which handles %, &, #, _, ...)."""
    s = str(s)
    for sym, tex in (("±", r"$\pm$"), ("λ", r"$\lambda$"), ("Δ", r"$\Delta$"),
                     ("×", r"$\times$"), ("ρ", r"$\rho$"), ("–", "--")):
        s = s.replace(sym, tex)
    return s


def latex_escape(text) -> str:
    """One string through the same Styler escaping as the cells (for captions)."""
    one = pd.DataFrame({"x": [latex_text(text)]}).style.format(escape="latex-math")
    line = one.hide(axis=0).hide(axis=1).to_latex().splitlines()[1]
    return line.removesuffix(r" \\").strip()


def latex_table(frame: pd.DataFrame, bold, caption: str = "", index: bool = True) -> str:
    """The one LaTeX writer: display strings -> a booktabs ``table`` (``Styler.to_latex``),
    symbols through :func:`latex_text`, everything escaped, the cells where ``bold`` (a frame
    of booleans of ``frame``'s shape) is True in ``\\textbf``; columns l then c."""
    tex = frame.map(latex_text)
    tex.index = [latex_text(i) for i in frame.index]
    tex.columns = [latex_text(c) for c in frame.columns]
    mask = bold.replace({True: "textbf:--rwrap;", False: ""})
    mask.index, mask.columns = tex.index, tex.columns
    styler = tex.style.format(escape="latex-math").format_index(escape="latex-math", axis=1)
    styler = (styler.format_index(escape="latex-math", axis=0) if index
              else styler.hide(axis="index"))
    kw = {"caption": latex_escape(caption)} if caption else {}
    return styler.apply(lambda _: mask, axis=None).to_latex(
        hrules=True, environment="table", position="t",
        column_format="l" + "c" * (len(frame.columns) - (0 if index else 1)), **kw)


def to_latex(frame: pd.DataFrame, caption: str = "", bold_best: bool = True) -> str:
    """A booktabs table (:func:`latex_table`), the best mean of each column in bold."""
    return latex_table(frame, bold_mask(frame, bold_best), caption)


def to_html(frame: pd.DataFrame, bold_best: bool = True) -> str:
    """An HTML table (``Styler.to_html``), the best mean of each column in bold."""
    mask = bold_mask(frame, bold_best)
    return (frame.style.apply(lambda _: mask.replace({True: "font-weight: bold", False: ""}),
                              axis=None).to_html())


def side_by_side(df: pd.DataFrame, value: str = "final_top1") -> pd.DataFrame:
    """Ours vs. the paper for every Table I cell we have: mean, std, n, paper mean/std,
    difference, and whether |diff| <= sqrt(std_ours² + std_paper²) (agree within stds)."""
    agg = aggregate(df, value, keys=["method", "dataset", "imb_type", "ratio"])
    paper = paper_table1()
    out = agg.merge(paper, on=["method", "dataset", "imb_type", "ratio"], how="left")
    out = out.rename(columns={"mean": "ours_mean", "std": "ours_std", "n": "ours_n"})
    out["diff"] = out["ours_mean"] - out["paper_mean"]
    combined = (out["ours_std"].fillna(0) ** 2 + out["paper_std"].fillna(0) ** 2) ** 0.5
    out["agree"] = (out["diff"].abs() <= combined).where(out["paper_mean"].notna())
    return out[["method", "dataset", "imb_type", "ratio", "ours_mean", "ours_std", "ours_n",
                "paper_mean", "paper_std", "diff", "agree"]]


def large_scale_frame(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Tables II/III: rows = the 15 methods, columns top-1/3/5 (ours) and the paper's."""
    done = df[(df["status"] == "terminated") & (df["dataset"] == dataset)]
    ours = done.groupby("method")[["test_top1", "test_top3", "test_top5"]].mean()
    paper = paper_table23()
    paper = paper[paper["dataset"] == dataset].set_index("method")[["top1", "top3", "top5"]]
    out = pd.DataFrame(index=pd.Index(TABLE23_ROWS, name="method"))
    for k in (1, 3, 5):
        out[f"top{k}"] = ours[f"test_top{k}"].reindex(out.index).round(2)
        out[f"paper top{k}"] = paper[f"top{k}"].reindex(out.index)
    return out
