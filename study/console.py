"""The words of a running study's console lines (Ray-free; shared by :mod:`study.progress`
and the Tune callback in :mod:`study.progress_callback`)::

    ELM + DRW (λ=0.5) CIFAR-10 LT ρ=100 seed 1  ep 120/200  top-1 71.24 (best 71.90 @115)
        many 88.1 med 70.2 few 52.3  2.9 s/ep  eta 4 min
"""
from __future__ import annotations

import math

from trainables.data.registry import setting_label
from trainables.methods import config_label, flatten_trial
from trainables.store import StudyRecord

STUDY_LINE_EVERY_S = 30.0
WAITING_NOTE_AFTER_S = 60.0   # a study waiting this long for resources says so in its line


def resume_command(study: StudyRecord, path: str) -> str:
    """The command that finishes this study (by name when it lies under its storage)."""
    storage = study.storage
    return (f"elm-study resume {study.name} --storage {storage}"
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
    """'ELM + DRW (λ=0.5) CIFAR-10 LT ρ=100 seed 1' (the setting: its one label,
    trainables.data.registry.setting_label)."""
    f = flatten_trial(config or {})
    ratio = f.get("ratio")
    where = (setting_label(f.get("dataset"), f.get("imb_type", "lt"), ratio)
             if isinstance(ratio, (int, float)) else str(f.get("dataset", "?")))
    return (f"{label or config_label(config)} {where} seed {f.get('seed')}"
            + (f" [{trial_id}]" if trial_id else ""))


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


def _resources(r: dict) -> str:
    return ", ".join(f"{v:g} {k}" for k, v in sorted(r.items())) or "nothing"


def waiting_note(seconds: float, what: str, asked: list[tuple[dict, str]] | None,
                 free: dict | None, total: dict | None) -> str:
    """' · all 2 trial(s) pending for 3 min: Ray holds 1 request(s) of 1 CPU (NO_RESOURCES)
    unplaced; free 0.75 CPU of 2 CPU'. ``asked``: (resources, Ray's scheduling state) of each
    request Ray has not placed; ``free``/``total``: Ray's available and cluster resources."""
    note = f" · {what} for {fmt_minutes(seconds)}"
    parts = []
    if asked:
        by = {}
        for res, state in asked:
            key = (_resources(res), state)
            by[key] = by.get(key, 0) + 1
        parts.append("Ray holds " + "; ".join(
            f"{n} request(s) of {res}" + (f" ({state})" if state else "")
            for (res, state), n in by.items()) + " unplaced")
    if free is not None and total is not None:
        parts.append(f"free {_resources(free)} of {_resources(total)}")
    return note + (": " + "; ".join(parts) if parts else "")
