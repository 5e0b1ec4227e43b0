"""The report's two headline tables as data frames: the verdicts (paired t-tests, Holm within
a setting, simultaneous t intervals: analysis/verdicts.py) and the mean ± std table with
human column names, the paper's values beside.

Each returns the frame to show (strings) and what styling needs (numbers, flags), so HTML,
Markdown and LaTeX are all rendered by pandas from the same frame.
"""
from __future__ import annotations

import math

import pandas as pd

from analysis.aggregate import aggregate, config_keys, paired_diffs
from analysis.formats import DASH, best_cells, mean_std
from analysis.tables import paper_table1, paper_table23
from analysis.verdicts import ALPHA, MIN_SEEDS, decide, min_called
from trainables.data.registry import setting_label
from trainables.methods import ELM_FAMILY, base_label

SETTING = ("dataset", "imb_type", "ratio")
PARAMS = (("lam", "λ"), ("max_m", "max margin M"), ("s", "scale s"))
METRICS = (("final_top1", "Top-1 final (%)"),
           ("best_top1_test_selected", "Top-1 best epoch, test-selected (%)"),
           # only where trials have it (val_fraction > 0): analysis/collect.py val_selected
           ("val_selected_top1",
            "Top-1 validation-selected epoch (val split held out of TRAIN) (%)"),
           ("test_many", "Many-shot (%)"), ("test_medium", "Medium-shot (%)"),
           ("test_few", "Few-shot (%)"), ("test_macro_f1", "Macro-F1 (%)"),
           ("test_ece", "ECE (%)"))
LOWER_IS_BETTER = {"ECE (%)"}    # marked best where lowest


def _uses(loss: str, param: str) -> bool:
    """Whether ``loss`` has ``param`` at all (its registry defaults name its parameters)."""
    from trainables.losses import takes_hparam
    try:
        return takes_hparam(loss, param)
    except ValueError:     # a loss this version does not know: show what it has
        return True


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
        shown[name] = [mean_std(m, s, n) for m, s, n in zip(part["mean"], part["std"],
                                                            part["n"])]
        means[name] = part["mean"].to_numpy()
    paper = _paper_values(agg)
    if any(not math.isnan(m) for m, _ in paper):
        shown["Paper top-1 (%)"] = [mean_std(m, s) for m, s in paper]
    shown["Status"] = ["incomplete" if bad else "complete" for bad in agg["incomplete"]]
    means["_setting"] = shown.get("Setting", pd.Series("", index=shown.index))
    return shown, means, agg["incomplete"].astype(bool)


def val_selected_note(shown: pd.DataFrame) -> str:
    """The summary note's sentence on the validation-selected column, "" where it is absent."""
    if not any(str(c).startswith("Top-1 validation-selected") for c in shown.columns):
        return ""
    return (" Validation-selected: the test top-1 of the epoch with the best top-1 on the "
            "validation split held out of TRAIN (val_fraction; ties: the earliest epoch), "
            "never chosen on test; those trials trained on fewer images than trials without "
            "a hold-out.")


def best_mask(shown: pd.DataFrame, means: pd.DataFrame) -> pd.DataFrame:
    """True where a metric cell holds the best mean of its column within its setting (highest;
    lowest for LOWER_IS_BETTER columns such as ECE), by the one bold rule
    (analysis.formats.best_cells: ties on the shown rounding all bold; a best mean, not a
    tested winner)."""
    mask = pd.DataFrame(False, index=shown.index, columns=shown.columns)
    best = best_cells(means.drop(columns="_setting"), means["_setting"], LOWER_IS_BETTER)
    mask[best.columns] = best
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


def _families(df: pd.DataFrame, comparisons, value: str, alpha: float):
    """The one family rule of the verdicts and of the reversals: per setting (dataset ×
    imb_type × ratio) of the terminated trials, the comparisons ``comparisons(part)`` gives
    ((a, b, ...) tuples) that have paired seeds, decided together (analysis/verdicts.py).
    Yields (setting label, or None without a full setting; those comparisons; Decision)."""
    done = df[df["status"] == "terminated"]
    keys = [k for k in SETTING if k in done]
    for setting, part in (done.groupby(keys, sort=False) if keys else [((), done)]):
        setting = setting if isinstance(setting, tuple) else (setting,)
        pairs = [(c, paired_diffs(part, c[0], c[1], value)) for c in comparisons(part)]
        pairs = [(c, d) for c, d in pairs if len(d)]   # no seed ran for both: nothing to test
        if not pairs:
            continue
        # [m, n]: one row per comparison, one column per pairing key, NaN where a seed is
        # missing from a pair
        grid = pd.concat([d for _, d in pairs], axis=1, keys=range(len(pairs)))
        yield (setting_label(*setting) if len(setting) == 3 else None, [c for c, _ in pairs],
               decide(grid.to_numpy(dtype=float).T, alpha))


def _method_pairs(part: pd.DataFrame) -> list[tuple[str, str]]:
    methods = list(dict.fromkeys(part["method"]))
    losses = dict(zip(part["method"], part["loss"]))
    drws = dict(zip(part["method"], part["drw"].fillna(False).astype(bool)))
    return _pairs(methods, losses, drws)


def verdicts(df: pd.DataFrame, value: str = "final_top1", alpha: float = ALPHA) -> pd.DataFrame:
    """One row per comparison and setting (numbers): a − b in top-1 points, the paired
    t-test's p and its Holm adjustment over the setting's comparisons (the family), the
    simultaneous t interval at the Bonferroni level of the family, the numbers of paired seeds
    and of comparisons in the family, the verdict in words (the rule: analysis/verdicts.py)."""
    rows = []
    for label, pairs, r in _families(df, _method_pairs, value, alpha):
        rows += [{"setting": label or "", "a": a, "b": b, "diff": r.mean[i], "ci_low": r.low[i],
                  "ci_high": r.high[i], "level": float(r.level), "seeds": int(r.n[i]),
                  "comparisons": int(r.m), "p": r.p[i], "p_holm": r.p_holm[i],
                  "verdict": _word(a, b, int(r.n[i]), int(r.sign[i]))}
                 for i, (a, b) in enumerate(pairs)]
    return pd.DataFrame(rows, columns=["setting", "a", "b", "diff", "ci_low", "ci_high",
                                       "level", "seeds", "comparisons", "p", "p_holm",
                                       "verdict"])


def _word(a: str, b: str, n: int, sign: int) -> str:
    if n < MIN_SEEDS:
        return "too few seeds to tell"
    return {1: f"{a} better", -1: f"{b} better"}.get(sign, "no clear difference")


def _interval(lo, hi, level, m) -> str:
    if pd.isna(lo):
        return ""
    if m == 1:
        return f", {level * 100:.3g} % CI [{lo:+.1f}, {hi:+.1f}]"
    family = 1 - (1 - level) * m        # Bonferroni: m intervals at 1 − α/m cover jointly 1 − α
    return (f", simultaneous {family * 100:.3g} % CI [{lo:+.1f}, {hi:+.1f}] "
            f"(Bonferroni, {m} comparisons)")


def _count(k: int, word: str) -> str:
    return f"{k} {word}{'s' * (k != 1)}"


def _p(p) -> str:
    return DASH if pd.isna(p) else "< 0.001" if p < 0.001 else f"{p:.3f}"


def verdict_display(v: pd.DataFrame) -> pd.DataFrame:
    """The verdicts as the report shows them: 'ELM + DRW vs LDAM + DRW' | '+x.x top-1,
    simultaneous 95 % CI [a, b] (Bonferroni, m comparisons), n seeds' | Holm-adjusted p |
    verdict (the result column sorts by the difference)."""
    return pd.DataFrame({
        "Setting": v["setting"], "Comparison": v["a"] + " vs " + v["b"],
        "Result": [f"{d:+.1f} top-1{_interval(lo, hi, lv, m)}, {_count(n, 'seed')}"
                   for d, lo, hi, lv, m, n in zip(v["diff"], v["ci_low"], v["ci_high"],
                                                  v["level"], v["comparisons"], v["seeds"])],
        "p (Holm)": [_p(p) for p in v["p_holm"]], "Verdict": v["verdict"]})


def verdict_note(v: pd.DataFrame) -> str:
    """The rule behind the verdict table in words, with the smallest difference each
    (seeds, comparisons) of the table could have called."""
    cases = sorted({(int(n), int(m)) for n, m in zip(v["seeds"], v["comparisons"])
                    if n >= MIN_SEEDS})
    needs = [(f"{_count(n, 'seed')} and {_count(m, 'comparison')}", f"{min_called(n, m):.1f}")
             for n, m in cases]
    reach = (f"With {needs[0][0]} a difference must exceed {needs[0][1]} standard deviations "
             "of the seed-paired differences to be called"
             + "".join(f"; with {case}, {need}" for case, need in needs[1:]) + ". "
             if needs else "")
    return (f"Each comparison is a two-sided paired t-test on the seed-paired differences "
            f"(at least {MIN_SEEDS} seeds). The comparisons of one setting form a family: "
            f"Holm's step-down adjustment over them, a winner only where the adjusted p is "
            f"below {ALPHA:g}. The interval is the paired t interval at the Bonferroni level "
            f"1 − {ALPHA:g}/m for the setting's m comparisons (jointly "
            f"{(1 - ALPHA) * 100:g} %); it excludes 0 only where Holm calls a winner. "
            f"“No clear difference” means not shown, not shown equal. {reach}"
            "See docs/statistics.md.")


# =========================================================================================
# against the paper: orderings it reports in every setting, reversed here
# =========================================================================================
def paper_orderings() -> list[tuple[str, str, int]]:
    """(a, b, settings): pairs of the paper's Table I baselines (no ELM-family method) where
    a's mean is above b's in every one of the ``settings`` the paper reports both in."""
    t1 = paper_table1()
    t1 = t1[~t1["method"].str.startswith("ELM")]
    wide = t1.pivot_table(index=["dataset", "imb_type", "ratio"], columns="method",
                          values="paper_mean")
    out = []
    for a in wide.columns:
        for b in wide.columns:
            both = wide[[a, b]].dropna()
            if a != b and len(both) > 1 and (both[a] > both[b]).all():
                out.append((a, b, len(both)))
    return out


def reversals(df: pd.DataFrame, value: str = "final_top1", alpha: float = ALPHA) -> list[str]:
    """One sentence per ordering the paper reports in every setting that this study's mean
    reverses, judged by the verdicts' test: the paired t-test, Holm over the reversal checks
    of one setting (their own family). Empty when no such pair ran or none is reversed."""
    orderings = paper_orderings()

    def checks(part):
        methods = set(part["method"])
        return [o for o in orderings if o[0] in methods and o[1] in methods]

    lines = []
    for label, pairs, r in _families(df, checks, value, alpha):
        for i, (a, b, k) in enumerate(pairs):
            if not r.mean[i] < 0:
                continue
            judged = (f"called by the test (Holm p {_p(r.p_holm[i])})" if r.sign[i] < 0 else
                      f"not called by the test (Holm p {_p(r.p_holm[i])}): it may be noise")
            lines.append(f"{label or 'this study'}: {a} is below {b} by {-r.mean[i]:.1f} "
                         f"top-1 over {_count(int(r.n[i]), 'paired seed')}, {judged}; the "
                         f"paper has {a} above {b} in all {k} settings of its Table I where "
                         "both ran.")
    return lines


def scope_note(df: pd.DataFrame) -> str | None:
    """What a study shorter than the recipe can and cannot show, in words (None for trials
    at the recipe's length): the report says it under its header."""
    if not {"epochs", "recipe_epochs", "seed"} <= set(df.columns) or df.empty:
        return None
    short = df[df["epochs"] < df["recipe_epochs"]]
    if short.empty:
        return None
    epochs = "/".join(f"{e:g}" for e in sorted(short["epochs"].dropna().unique()))
    recipe = "/".join(f"{e:g}" for e in sorted(short["recipe_epochs"].dropna().unique()))
    seeds = int(df.groupby("method")["seed"].nunique().min()) if "method" in df else 0
    unit = "epoch" if epochs == "1" else "epochs"
    return (f"Scope: {len(short)} of {len(df)} trials ran {epochs} {unit} of the recipe's "
            f"{recipe} (the schedule scaled to that length, docs/recipe.md). They compare the "
            "methods at this length, on this data; they are not the paper's numbers, and an "
            "ordering here need not hold at the recipe's length. With "
            f"{seeds} seed{'s' if seeds != 1 else ''} per method only a large difference can "
            "be called (the note under the verdicts says how large); \"no clear difference\" "
            "is not evidence of equality.")
