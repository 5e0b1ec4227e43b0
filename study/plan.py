"""What a run launches: a new study, or the missing trials of an existing one (an extension).

A study folder holds one Ray Tune experiment per run: run 1 in the folder itself, run k in
``run-<k>/``. ``study.json`` lists the runs (what file, how many trials each added and kept),
and each run's resolved study file is saved beside it (``study-run-<k>.yaml``), so a result can
always be traced to the exact grid that produced it. A trial's key (``TrialConfig.trial_key``)
decides what is already there: a key with a finished trial is never launched again, and a key
with an unfinished trial stays with its run (``resume`` finishes it).
"""
from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

from study.store import STUDY_FILE, StudyError, is_remote, read_meta, write_meta
from trainables.methods import label_of


def spec_as_file(spec: dict) -> dict:
    """A resolved spec in study-file form (what `show` prints and every run saves): a valid
    study file a user can copy, edit and run."""
    out = {"description": spec.get("description", ""), "base": spec["base"]}
    for k in ("methods", "grid", "resources", "search", "scheduler"):
        if spec.get(k):
            out[k] = spec[k]
    if "methods" in out:
        out["methods"] = [method_text(m) for m in out["methods"]]
    if "search" in out:
        out["search"] = {**out["search"], "space": {
            k: f"{kind}({', '.join(map(str, args))})"
            for k, (kind, args) in out["search"]["space"].items()}}
    return out


def method_text(m: dict):
    """A method as the shorthand users write (``elm+drw(lam=0.5)``), or the mapping when a
    value would not survive the shorthand (lists, commas)."""
    extra = {k: v for k, v in m.items() if k not in ("loss", "drw")}
    if any(isinstance(v, (list, dict)) or "," in str(v) for v in extra.values()):
        return m
    args = ", ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}"
                     for k, v in extra.items())
    return m["loss"] + ("+drw" if m.get("drw") else "") + (f"({args})" if args else "")


class _Dumper(yaml.SafeDumper):
    """Lists of plain values on one line (``ratio: [10.0, 50.0]``), as people write them."""


_Dumper.add_representer(list, lambda d, v: d.represent_sequence(
    "tag:yaml.org,2002:seq", v, flow_style=all(not isinstance(x, (list, dict)) for x in v)))


def dump_yaml(data: dict) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def describe(space, *, samples: int = 5, path=None, full: bool = True) -> str:
    """The resolved study as a user reads it: file, trial count and axes, samples."""
    lines = []
    if full:
        lines += [f"# study '{space.name}' from {space.source}", dump_yaml(spec_as_file(
            space.spec)).rstrip(), ""]
    dicts = space.trial_dicts()
    if space.is_search:
        lines.append(f"# {space.expected_trials} trials sampled by "
                     f"{space.spec['search']['sampler']} on {space.metric} "
                     f"({space.mode}); validated at the corners and midpoint of the space:")
    else:
        methods = Counter(label_of(d) for d in dicts)
        axes = {k: len(v) for k, v in space.spec["grid"].items()}
        lines.append(f"# {space.expected_trials} trials: {len(methods)} methods"
                     + "".join(f" × {n} {k}" for k, n in axes.items() if k not in ("lam",))
                     + (" (loss hyper-parameter axes apply to the methods that take them)"
                        if any(k == "lam" or k in ("s", "max_m") for k in axes) else ""))
        lines.append("# methods: " + ", ".join(f"{m} ×{n}" for m, n in methods.items()))
    if path is not None:
        lines.append(f"# -> {path}")
    for d in dicts[:samples]:      # comments, so that `show` prints a runnable study file
        lines.append("#   " + json.dumps(d, ensure_ascii=False))
    if len(dicts) > samples:
        lines.append(f"#   ... ({len(dicts) - samples} more)")
    return "\n".join(lines)


def _run_entry(space, number: int, meta: dict, argv, **counts) -> dict:
    return {"run": number, "dir": "." if number == 1 else f"run-{number}",
            "spec_file": f"study-run-{number}.yaml" if space.spec else None,
            "source": space.source,
            "launched": space.expected_trials, **counts,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "command": " ".join(["elm-study", *(argv or sys.argv[1:])]),
            **{k: meta.get(k) for k in ("cpus_per_trial", "gpus_per_trial", "max_concurrent",
                                       "max_failures")}}


def save_spec(path: Path, space, number: int) -> None:
    """The resolved study file of run ``number``, beside study.json (written once the run's
    resources are known good, so a refused run leaves no folder behind). A space built in
    Python rather than from a file has no spec to save; its trials' params.json say it all."""
    if space.spec and not is_remote(str(path)):
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / f"study-run-{number}.yaml").write_text(
            f"# run {number} of study '{Path(path).name}', resolved from {space.source}\n"
            + dump_yaml(spec_as_file(space.spec)))


def launch(space, path: str, meta: dict, args) -> int:
    """A new study (run 1), or ``--resume`` of the same one, or ``--force`` replacing it."""
    from study.launcher import fit_study, new_study_dir, resume_study
    if args.resume and not args.force and (Path(path) / STUDY_FILE).exists():
        old = read_meta(Path(path))
        if old.get("space") != space.name:
            raise StudyError(f"study folder {path} holds study '{old.get('space')}', not "
                             f"'{space.name}'; choose another --name")
        return resume_study(Path(path), old, address=args.address, dashboard=args.dashboard,
                            dashboard_host=args.dashboard_host)
    new_study_dir(path, meta, force=args.force)
    meta = {**meta, "expected_trials": space.expected_trials,
            "runs": [_run_entry(space, 1, meta, None, kept=0, unfinished_elsewhere=0)]}
    return fit_study(space, path, meta, address=args.address, dashboard=args.dashboard,
                     dashboard_host=args.dashboard_host)


def split_by_key(space, study_path: Path) -> tuple[list[bool], int, int]:
    """(launch this trial?, kept: finished there already, unfinished in an earlier run)."""
    from trainables.results import FINISHED, study_trials
    states: dict[str, set] = {}
    for t in study_trials(study_path):
        if t["trial_key"]:
            states.setdefault(t["trial_key"], set()).add(t["status"] in FINISHED)
    keys = space.trial_keys()
    if len(set(keys)) != len(keys):
        dup = next(k for k, n in Counter(keys).items() if n > 1)
        raise StudyError(f"{space.source}: two trials of this study have the same key {dup} "
                         "(the same configuration twice); remove the duplicate")
    launch_it = [k not in states for k in keys]
    kept = sum(1 for k in keys if True in states.get(k, ()))
    unfinished = sum(1 for k in keys if k in states and True not in states[k])
    return launch_it, kept, unfinished


def extend(space, path: Path, meta: dict, args) -> int:
    """``run FILE --into STUDY``: launch only the trials whose key the study lacks."""
    from study.launcher import fit_study
    if space.is_search:
        raise StudyError(f"--into: '{space.name}' is a search; a search continues with "
                         f"'elm-study resume {path}' (more samples: a new study)")
    old = read_meta(path)
    if old.get("search") or (path / "optuna.db").exists():
        raise StudyError(f"--into: study {path} is a search; it cannot take grid trials")
    launch_it, kept, unfinished = split_by_key(space, path)
    runs = old.get("runs") or [{"run": 1, "dir": ".", "launched": old.get("expected_trials")}]
    number = max(r["run"] for r in runs) + 1
    sub = space.subset(launch_it)
    print(f"study {path.name}: {space.expected_trials} trials in {space.source}; "
          f"{kept} finished there already (kept), {unfinished} unfinished in earlier runs"
          f"{f' (finish them with: elm-study resume {path})' if unfinished else ''}; "
          f"adding {sub.expected_trials}" + (f" as run {number}" if sub.expected_trials else ""),
          flush=True)
    if args.dry_run:
        print(describe(sub, samples=5, path=path / f"run-{number}", full=False))
        return 0
    if not sub.expected_trials:
        return 0
    meta = {**old, **{k: meta[k] for k in ("cpus_per_trial", "gpus_per_trial",
                                           "max_concurrent", "max_failures")},
            "expected_trials": (old.get("expected_trials") or 0) + sub.expected_trials,
            "runs": runs + [_run_entry(sub, number, meta, None, kept=kept,
                                       unfinished_elsewhere=unfinished)]}
    return fit_study(sub, str(path), meta, address=args.address, dashboard=args.dashboard,
                     dashboard_host=args.dashboard_host, run=number)


def placement(meta: dict) -> str:
    """For data-parallel trials: what one trial takes, and how many fit on this machine (a
    cluster's count is printed when the study starts and Ray knows its resources)."""
    import os

    import torch

    from trainables.distributed import max_trials_that_fit
    n, gpus = meta["workers_per_trial"], torch.cuda.device_count()
    here = {"CPU": os.cpu_count() or 1, "GPU": gpus}
    fits = max_trials_that_fit({"cpu": meta["cpus_per_trial"], "gpu": 1 if gpus else 0}, n,
                               here)
    return (f"# each trial: {n} Ray Train workers ({n} GPU(s) where the cluster has GPUs, "
            f"{meta['cpus_per_trial']:g} CPU each); this machine ({here['CPU']} CPUs, {gpus} "
            f"GPUs) holds {fits} such trial(s) at once")
