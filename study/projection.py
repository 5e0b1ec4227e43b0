"""What a dry run says a study will cost before it runs: how many training images it will
process (trials × epochs × training images, from trainables.data.registry.training_counts),
and, where an earlier study under the same storage folder measured a training rate on this
machine (``train_images_per_s`` in its rows), the projected training time, naming that study.

The rate is per trial (what a row measures); trials that run side by side are counted as
running at that rate each, up to what this machine holds at once. Evaluation, start-up and
checkpoints are not in it: it is training time, said so.
"""
from __future__ import annotations

import math
import socket
import statistics
from pathlib import Path

from study.console import fmt_minutes
from trainables.data.registry import training_counts
from trainables.store import STUDY_FILE, has_study_file, study_trials


def study_images(configs) -> tuple[int, int, int]:
    """(images the trials will train on, in all; trials counted; trials whose training size
    is not known before their data is read: split-list datasets)."""
    total, unknown = 0, 0
    for cfg in configs:
        counts = training_counts(cfg)
        if counts is None:
            unknown += 1
            continue
        total += cfg.epochs * sum(counts)
    return total, len(configs), unknown


def this_device(cfg) -> str:
    """The device name a trial of ``cfg`` would record here (trainables.cost.device_name)."""
    from trainables.cost import device_name
    from trainables.engine import resolve_device
    try:
        return device_name(resolve_device(cfg.device))
    except ValueError:
        return "?"


def _matches(row: dict, host: str, device: str) -> bool:
    rate = row.get("train_images_per_s")
    if not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        return False
    if row.get("hostname") not in (None, host):
        return False
    if row.get("cost_device") not in (None, device):
        return False
    return True


def earlier_rate(storage: str, cfg) -> dict | None:
    """The training rate of the newest study under ``storage`` (by its study.json's time)
    with rows of ``cfg``'s dataset and model measured on this machine: {'rate' (the median
    img/s per trial of those rows), 'study', 'rows'}; None when no study has such rows."""
    root = Path(storage)
    if "://" in storage or not root.is_dir():
        return None
    studies = sorted((p for p in root.iterdir() if has_study_file(p)),
                     key=lambda p: (p / STUDY_FILE).stat().st_mtime, reverse=True)
    host, device = socket.gethostname(), this_device(cfg)
    for study in studies:
        rates = []
        for t in study_trials(study, damage=[]):
            # the same dataset and model (rates differ by orders of magnitude between them)
            if (t.config.get("dataset"), t.config.get("model")) != (cfg.dataset, cfg.model):
                continue
            rates += [r["train_images_per_s"] for r in t.rows if _matches(r, host, device)]
        if rates:
            return {"rate": statistics.median(rates), "study": study.name, "rows": len(rates)}
    return None


def at_once(options, trials: int) -> int:
    """Trials this machine runs side by side under ``options`` (its CPUs and GPUs)."""
    from study.placement import this_machine
    here = this_machine()
    gpus = options.gpus_per_trial if options.gpus_per_trial is not None else (
        0.25 if here["GPU"] else 0)
    by = [math.floor(here["CPU"] / max(options.cpus_per_trial, 1e-9))]
    if gpus:
        by.append(math.floor(here["GPU"] / gpus))
    if options.max_concurrent:
        by.append(options.max_concurrent)
    return max(1, min(*by, max(trials, 1)))


def dry_run_lines(plan) -> list[str]:
    """The dry run's lines on the study's size in images and its projected training time."""
    configs = plan.space.configs()
    if not configs:
        return []
    images, n, unknown = study_images(configs)
    search = plan.space.is_search
    if search:   # representative points: scale their mean to the trials the search runs
        known = n - unknown
        images = round(images / known * plan.space.expected_trials) if known else 0
        n = plan.space.expected_trials
    first = configs[0]
    shapes = {(c.epochs, sum(training_counts(c) or [0])) for c in configs}
    formula = (f"{n} trials × {first.epochs} epochs × {shapes.pop()[1]:,} training images"
               if len(shapes) == 1 and not unknown else f"{n} trials × epochs × training "
               "images of each")
    lines = [f"# training images to process: {images:,} ({formula}, after the long-tail "
             "subsampling and any validation hold-out"
             + (f"; {unknown} trial(s) of split-list datasets not counted" if unknown else "")
             + ("; estimated from the search's sample points" if search else "") + ")"]
    storage = str(Path(plan.path).parent)
    found = earlier_rate(storage, first)
    what = f"{first.dataset}/{first.model} on {this_device(first)}"
    if found is None or not images:
        lines.append(f"# projected time: unknown (no earlier study under {storage} measured "
                     f"a training rate for {what} on this machine)")
        return lines
    k = at_once(plan.options, n)
    seconds = images / (found["rate"] * k)
    lines.append(f"# projected training time: {fmt_minutes(seconds)} at {found['rate']:,.0f} "
                 f"img/s per trial, {k} trial(s) at a time (the median of {found['rows']} "
                 f"rows of study '{found['study']}' on this machine, {what}; evaluation and "
                 "start-up not included)")
    return lines
