"""The report's two headline tables as data frames: the verdicts (paired differences with a
bootstrap CI) and the mean ± std table with human column names, the paper's values beside.

Each returns the frame to show (strings) and what styling needs (numbers, flags), so HTML,
Markdown and LaTeX are all rendered by pandas from the same frame.
"""
from __future__ import annotations

import math

import pandas as pd

from analysis.aggregate import aggregate, config_keys, paired_difference
from analysis.tables import paper_table1, paper_table23
from trainables.methods import ELM_FAMILY, base_label

SETTING = ("dataset", "imb_type", "ratio")
PARAMS = (("lam", "λ"), ("max_m", "max margin M"), ("s", "scale s"))
METRICS = (("final_top1", "Top-1 final (%)"),
           ("best_top1_test_selected", "Top-1 best epoch, test-selected (%)"),
           ("test_many", "Many-shot (%)"), ("test_medium", "Medium-shot (%)"),
           ("test_few", "Few-shot (%)"), ("test_macro_f1", "Macro-F1 (%)"),
           ("test_ece", "ECE (%)"))
LOWER_IS_BETTER = {"ECE (%)"}    # marked best where lowest
DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "fashion_mnist":
                 "Fashion-MNIST", "imagenet_lt": "ImageNet-LT", "places_lt": "Places-LT",
                 "synthetic": "synthetic"}
DASH = "–"


def setting_label(dataset, imb_type, ratio) -> str:
    imb = {"lt": "LT", "step": "Step"}.get(imb_type, str(imb_type))
    return f"{DATASET_NAMES.get(dataset, dataset)} {imb} ρ={float(ratio):g}"


def _uses(loss: str, param: str) -> bool:
    """Whether ``loss`` has ``param`` at all (its registry defaults name its parameters)."""
    try:
        from trainables.losses import LOSSES
        return param in LOSSES[loss].defaults
    except (ImportError, KeyError, AttributeError):
        return True


def _mean_std(mean, std, n) -> str:
    if mean is None or pd.isna(mean):
        return DASH
    return f"{mean:.2f}" if n is None or n < 2 or pd.isna(std) else f"{mean:.2f} ± {std:.2f}"


def _paper_values(agg: pd.DataFrame) -> list:
    """The paper's top-1 (mean, std) for each row, where the paper has the cell."""
    t1 = paper_table1().set_index(["method", "dataset", "imb_type", "ratio"])
    t23 = paper_table23().set_index(["method", "dataset"])
    out = []
    for r in agg.itertuples():
        key = (r.method, r.dataset, getattr(r, "imb_type", None), float(r.ratio))
        if key in t1.index:
            p = t1.loc[key]
            out.append((float(p["paper_mean"]), float(p["paper_std"])))
        elif (r.method, r.dataset) in t23.index:
            out.append((float(t23.loc[(r.method, r.dataset), "top1"]), math.nan))
        else:
            out.append((math.nan, math.nan))
    return out


def summary(df: pd.DataFrame, planned_seeds: int | None = None):
    """(shown, means, incomplete): one row per configuration, strings with "–" for
    parameters the loss does not have; ``means`` holds each metric column's numbers (for
    marking the best per setting); ``incomplete`` is a boolean Series."""
    keys = config_keys(df)
    agg = aggregate(df, "final_top1", keys=keys, planned_seeds=planned_seeds)
    if agg.empty:
        return pd.DataFrame(), pd.DataFrame(), pd.Series(dtype=bool)
    planned = planned_seeds or int(agg["n"].max())
    shown = pd.DataFrame({"Method": agg["method"]})
    if "dataset" in agg:
        shown["Setting"] = [setting_label(r.dataset, getattr(r, "imb_type", "lt"), r.ratio)
                            for r in agg.itertuples()]
    for key, name in PARAMS:
        if key in agg:
            shown[name] = [f"{v:g}" if _uses(loss, key) and not pd.isna(v) else DASH
                           for loss, v in zip(agg["loss"], agg[key])]
    shown["Seeds"] = [f"{n} of {planned}" if bad else str(n)
                      for n, bad in zip(agg["n"], agg["incomplete"])]
    means = pd.DataFrame(index=shown.index)
    for value, name in METRICS:
        if value not in df or df[value].isna().all():
            continue
        part = aggregate(df, value, keys=keys, planned_seeds=planned_seeds)
        part = agg[keys].merge(part, on=keys, how="left")
        shown[name] = [_mean_std(m, s, n) for m, s, n in zip(part["mean"], part["std"],
                                                             part["n"])]
        means[name] = part["mean"].to_numpy()
    paper = _paper_values(agg)
    if any(not math.isnan(m) for m, _ in paper):
        shown["Paper top-1 (%)"] = [_mean_std(m, s, 1 if math.isnan(s) else 2)
                                    for m, s in paper]
    shown["Status"] = ["incomplete" if bad else "complete" for bad in agg["incomplete"]]
    means["_setting"] = shown.get("Setting", pd.Series("", index=shown.index))
    return shown, means, agg["incomplete"].astype(bool)


def best_mask(shown: pd.DataFrame, means: pd.DataFrame) -> pd.DataFrame:
    """True where a metric cell is the best mean of its column within its setting (highest;
    lowest for LOWER_IS_BETTER columns such as ECE)."""
    mask = pd.DataFrame(False, index=shown.index, columns=shown.columns)
    for col in means.columns.drop("_setting"):
        best = means.groupby("_setting")[col].transform(
            "min" if col in LOWER_IS_BETTER else "max")
        mask[col] = means[col].notna() & (means[col] == best)
    return mask


def _pairs(methods: list[str], losses: dict, drws: dict) -> list[tuple[str, str]]:
    """The comparisons that matter: each ELM-family method against the LDAM baseline with
    the same DRW setting (the paper's claim) and against CE; without ELM, each method
    against CE."""
    elm = [m for m in methods if losses[m] in ELM_FAMILY]
    pairs = []
    for m in elm or [m for m in methods if losses[m] != "ce"]:
        base = base_label("ldam", drws[m])
        if base in methods:
            pairs.append((m, base))
        if base_label("ce") in methods:
            pairs.append((m, base_label("ce")))
    return pairs


def verdicts(df: pd.DataFrame, value: str = "final_top1", level: float = 0.95) -> pd.DataFrame:
    """One row per comparison and setting (numbers): a − b in top-1 points, its seed-paired
    bootstrap CI, the number of paired seeds, the verdict in words."""
    rows = []
    done = df[df["status"] == "terminated"]
    keys = [k for k in SETTING if k in done]
    for setting, part in (done.groupby(keys, sort=False) if keys else [((), done)]):
        setting = setting if isinstance(setting, tuple) else (setting,)
        methods = list(dict.fromkeys(part["method"]))
        losses = dict(zip(part["method"], part["loss"]))
        drws = dict(zip(part["method"], part["drw"].fillna(False).astype(bool)))
        for a, b in _pairs(methods, losses, drws):
            try:
                r = paired_difference(part, a, b, value, level=level)
            except ValueError:          # no seed ran for both: nothing to compare
                continue
            rows.append({"setting": setting_label(*setting) if len(setting) == 3 else "",
                         "a": a, "b": b, "diff": r["mean_diff"], "ci_low": r["ci_low"],
                         "ci_high": r["ci_high"], "level": level, "seeds": r["n_pairs"],
                         "verdict": _word(r)})
    return pd.DataFrame(rows, columns=["setting", "a", "b", "diff", "ci_low", "ci_high",
                                       "level", "seeds", "verdict"])


def _word(r: dict) -> str:
    if r["n_pairs"] < 3:
        return "too few seeds to tell"
    if r["ci_low"] > 0:
        return f"{r['a']} better"
    if r["ci_high"] < 0:
        return f"{r['b']} better"
    return "no clear difference"


def verdict_display(v: pd.DataFrame) -> pd.DataFrame:
    """The verdicts as the report shows them: 'ELM + DRW vs LDAM + DRW' | '+x.x top-1,
    95 % CI [a, b], n seeds' | verdict (the result column sorts by the difference)."""
    return pd.DataFrame({
        "Setting": v["setting"], "Comparison": v["a"] + " vs " + v["b"],
        "Result": [f"{d:+.1f} top-1, {lv * 100:g} % CI [{lo:+.1f}, {hi:+.1f}], {n} seeds"
                   for d, lo, hi, lv, n in zip(v["diff"], v["ci_low"], v["ci_high"],
                                               v["level"], v["seeds"])],
        "Verdict": v["verdict"]})
