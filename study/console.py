"""The words of a running study's console lines (Ray-free; shared by :mod:`study.progress`
and the Tune callback in :mod:`study.progress_callback`)::

    ELM + DRW (λ=0.5) cifar10-lt r=100 seed 1  ep 120/200  top-1 71.24 (best 71.90 @115)
        many 88.1 med 70.2 few 52.3  2.9 s/ep  eta 4 min
"""
from __future__ import annotations

import math

from trainables.methods import flatten_trial, trial_name

STUDY_LINE_EVERY_S = 30.0


def resume_command(meta: dict, path: str) -> str:
    """The command that finishes this study (by name when it lies under its storage)."""
    storage = meta.get("storage")
    return (f"elm-study resume {meta.get('name')}" + (f" --storage {storage}" if storage else "")
            if storage and str(path).startswith(str(storage)) else f"elm-study resume {path}")

def fmt_minutes(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def num(v, fmt: str) -> str:
    return format(v, fmt) if isinstance(v, (int, float)) and math.isfinite(v) else "–"


def trial_words(config: dict, trial_id: str = "", label: str | None = None) -> str:
    """'ELM + DRW (λ=0.5) cifar10-lt r=100 seed 1'."""
    f = flatten_trial(config or {})
    name = trial_name(config)
    if label:
        name = f"{label} seed {f.get('seed')}"
    label_part, _, seed_part = name.rpartition(" seed ")
    ratio = f.get("ratio")
    where = f"{f.get('dataset', '?')}-{f.get('imb_type', 'lt')}" + (
        f" r={ratio:g}" if isinstance(ratio, (int, float)) else "")
    return f"{label_part} {where} seed {seed_part}" + (f" [{trial_id}]" if trial_id else "")


def progress_line(config: dict, result: dict, s_per_epoch: float) -> str:
    """One evaluation's line (see the module docstring)."""
    f = flatten_trial(config or {})
    epoch, epochs = result.get("epoch"), f.get("epochs")
    left = (epochs - epoch) * s_per_epoch if isinstance(epochs, int) and epoch else math.nan
    best = f"(best {num(result.get('best_test_top1'), '.2f')} @{result.get('best_epoch', '?')})"
    groups = "  ".join(f"{short} {num(result.get(f'test_{g}'), '.1f')}"
                       for g, short in (("many", "many"), ("medium", "med"), ("few", "few")))
    return (f"{trial_words(config, label=result.get('method'))}  ep {epoch}/{epochs}  "
            f"top-1 {num(result.get('test_top1'), '.2f')} {best}  {groups}  "
            f"{num(s_per_epoch, '.1f')} s/ep  eta {fmt_minutes(left)}")
