"""What a study cost, per method and in all, in device-hours (trainables/cost.py says how a
trial's device-seconds are counted: wall time × its share of a device, every attempt).

GPU-hours and CPU-hours are never added together: a CPU-only trial's time is CPU-hours
(CPUs held × hours). Trials whose rows predate cost records are counted as unknown, never as
zero. One formatter for ``elm-study status``, the end of a run and the report.
"""
from __future__ import annotations

import math

import pandas as pd

KINDS = (("gpu", "GPU-h", "cost_gpu_s"), ("cpu", "CPU-h", "cost_cpu_s"))


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) \
        and math.isfinite(v) else None


def hours(seconds: float, unit: str) -> str:
    """'0.0123 CPU-h', '12.4 GPU-h' (three significant digits)."""
    return f"{seconds / 3600:.3g} {unit}"


def amount(gpu_s: float, cpu_s: float) -> str:
    """'1.2 GPU-h', '0.05 CPU-h' or '1.2 GPU-h + 0.05 CPU-h' (never summed)."""
    parts = [hours(s, unit) for s, unit in ((gpu_s, "GPU-h"), (cpu_s, "CPU-h")) if s > 0]
    return " + ".join(parts) or "0 CPU-h"


def _group(part: pd.DataFrame) -> dict:
    ran = part[part["epochs_done"].fillna(0) > 0] if "epochs_done" in part else part
    col = lambda k: ran[k] if k in ran else pd.Series(dtype=float, index=ran.index)  # noqa
    known = col("cost_wall_s").map(_num).notna()
    devices = sorted({str(d) for d in col("cost_device").dropna()})
    return {"trials": int(len(part)), "with_cost": int(known.sum()),
            "unknown": int((~known).sum()),
            "gpu_s": float(col("cost_gpu_s").map(_num).fillna(0).sum()),
            "cpu_s": float(col("cost_cpu_s").map(_num).fillna(0).sum()),
            "wall_s": float(col("cost_wall_s").map(_num).fillna(0).sum()),
            "attempts": int(col("cost_attempts").map(_num).fillna(0).sum()),
            "devices": ", ".join(devices)}


def cost_by_method(df: pd.DataFrame) -> pd.DataFrame:
    """One row per method (in the frame's order), then one for the whole study (``method``
    'study'): trials, how many have a recorded cost and how many not (``unknown``: rows
    written before costs were recorded; a trial that has reported nothing yet is neither),
    GPU-seconds, CPU-seconds, wall seconds, attempts, the devices."""
    if df.empty or "method" not in df:
        return pd.DataFrame()
    rows = [{"method": m, **_group(part)} for m, part in df.groupby("method", sort=False)]
    rows.append({"method": "study", **_group(df)})
    return pd.DataFrame(rows)


def _cell(r, unknown: bool = True) -> str:
    if not r["with_cost"]:
        return "unknown" if r["unknown"] else "–"
    text = amount(r["gpu_s"], r["cpu_s"])
    return text + (f" (+{r['unknown']} unknown)" if r["unknown"] and unknown else "")


def _trials(n: int) -> str:
    return f"{n} trial{'s' if n != 1 else ''}"


def cost_lines(df: pd.DataFrame) -> list[str]:
    """The console's cost lines (status, end of a run): the study's device-hours, then each
    method's; [] for a study with no trials."""
    table = cost_by_method(df)
    if table.empty:
        return []
    total = table.iloc[-1]
    where = f" on {total['devices']}" if total["devices"] else ""
    lines = [f"cost (device-hours, every attempt): {_cell(total, unknown=False)} over "
             f"{_trials(total['trials'])}{where}"]
    if total["unknown"]:
        lines[0] = (f"cost (device-hours): unknown, the rows of {_trials(total['unknown'])} were "
                    "written before costs were recorded" if not total["with_cost"] else
                    lines[0] + f"; {_trials(total['unknown'])} unknown (written before costs "
                    "were recorded)")
    width = max(len(str(m)) for m in table["method"])
    lines += [f"  {r['method']:<{width}}  {_cell(r)}  ({_trials(r['trials'])})"
              for _, r in table.iloc[:-1].iterrows()]
    return lines


def cost_display(df: pd.DataFrame) -> pd.DataFrame:
    """The report's cost table: Method | Trials | GPU-hours | CPU-hours | Wall hours |
    Attempts | Devices, the study's row last; 'unknown' where no trial of a row has a cost."""
    table = cost_by_method(df)
    if table.empty:
        return table

    def h(r, key):
        if not r["with_cost"]:
            return "unknown" if r["unknown"] else "–"
        return f"{r[key] / 3600:.3g}" + (f" (+{r['unknown']} unknown)" if r["unknown"] else "")

    shown = pd.DataFrame({
        "Method": ["Study (all methods)" if m == "study" else m for m in table["method"]],
        "Trials": table["trials"].astype(str),
        "GPU-hours": [h(r, "gpu_s") for _, r in table.iterrows()],
        "CPU-hours": [h(r, "cpu_s") for _, r in table.iterrows()],
        "Wall hours": [h(r, "wall_s") for _, r in table.iterrows()],
        "Attempts": [str(r["attempts"]) if r["with_cost"] else "–"
                     for _, r in table.iterrows()],
        "Devices": [r["devices"] or "–" for _, r in table.iterrows()]})
    total = table.iloc[-1]
    if total["with_cost"]:   # a kind no trial used is not a column of zeros
        shown = shown.drop(columns=[c for c, key in (("GPU-hours", "gpu_s"),
                                                     ("CPU-hours", "cpu_s"))
                                    if total[key] == 0])
    return shown


COST_NOTE = ("Device-hours: each trial's wall time × the share of a device it held (its GPU "
             "fraction; a pack's resources split evenly among its members; a data-parallel "
             "trial's workers together), summed over every attempt (retries and resumes "
             "included). CPU-only trials count CPU-hours (CPUs held × hours), never added to "
             "GPU-hours. Wall hours add the trials' own times (trials run side by side "
             "overlap). “unknown”: trials written before costs were recorded.")
