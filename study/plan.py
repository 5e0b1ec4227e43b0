"""What a run launches: a new study, or the missing trials of an existing one (an extension).

A study folder holds one Ray Tune experiment per run: run 1 in the folder itself, run k in
``run-<k>/``. ``study.json`` lists the runs (what file, how many trials each added and kept),
and each run's resolved study file is saved beside it (``study-run-<k>.yaml``), so a result can
always be traced to the exact grid that produced it. A trial's key (``TrialConfig.trial_key``)
decides what is already there: a key with a finished trial is never launched again, and a key
with an unfinished trial stays with its run (``resume`` finishes it).

:func:`plan_run` decides, from a validated StudySpace and the run's options, what a ``run``
command launches and returns it as a :class:`Plan` (nothing is written, Ray is not started);
:mod:`study.launcher` carries it out.
"""
from __future__ import annotations

import dataclasses

import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from study.options import RunOptions
from study.packs import check_pack_options, packed
from study.store import StudyError, is_remote, locate, storage_root, study_dir
from trainables.config import LOSS_HPARAMS
from trainables.methods import label_of
from trainables.store import RunRecord, StudyRecord, has_study_file, read_study


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
                     f"({space.mode}); validated at the corners and midpoint of the space"
                     " (and the extremes of its data-size fields):")
    else:
        methods = Counter(label_of(d) for d in dicts)
        axes = {k: len(v) for k, v in space.spec["grid"].items()}
        lines.append(f"# {space.expected_trials} trials: {len(methods)} methods"
                     + "".join(f" × {n} {k}" for k, n in axes.items() if k not in ("lam",))
                     + (" (loss hyper-parameter axes apply to the methods that take them)"
                        if any(k in LOSS_HPARAMS for k in axes) else ""))
        lines.append("# methods: " + ", ".join(f"{m} ×{n}" for m, n in methods.items()))
    if path is not None:
        lines.append(f"# -> {path}")
    line = schedule_line(dicts[0]) if dicts else None
    if line:
        lines.append(line)
    for d in dicts[:samples]:      # comments, so that `show` prints a runnable study file
        lines.append("#   " + json.dumps(d, ensure_ascii=False))
    if len(dicts) > samples:
        lines.append(f"#   ... ({len(dicts) - samples} more)")
    return "\n".join(lines)


def schedule_line(trial: dict) -> str | None:
    """The first trial's schedule in the recipe's phases beside the 200-epoch recipe's own
    (TrialConfig's defaults, with DRW): what makes a short run a miniature of it, or not."""
    from trainables.config import TrialConfig
    try:
        cfg = TrialConfig.from_dict(trial)
    except ValueError:   # a trial that cannot run: the refusal says why, elsewhere
        return None
    # the recipe on this trial's data (its steps per epoch), with the recipe's schedule
    same_data = {k: getattr(cfg, k) for k in ("dataset", "imb_type", "ratio", "img_max",
                                              "val_fraction", "batch_size")}
    recipe = TrialConfig.from_dict({**same_data, "drw": True}).schedule_phases()
    mine = cfg.replace(drw=True).schedule_phases()
    parts = ", ".join(f"{k} {n} ({100 * mine['shares'][k]:.1f} %)"
                      for k, n in mine["steps"].items())
    shares = " / ".join(f"{100 * v:.1f}" for v in recipe["shares"].values())
    recipe_epochs = TrialConfig.from_dict({"dataset": cfg.dataset}).recipe_epochs
    return (f"# schedule of trial 0 ({mine['total']} {mine['unit']}): {parts}; the "
            f"{recipe_epochs}-epoch recipe's {recipe['total']} {recipe['unit']} on the same "
            f"data: {shares} %")


@dataclass(frozen=True)
class Plan:
    """What one ``run`` command launches. ``kind``: "new" (run 1 of a new study, replacing an
    old one with ``force``), "resume" (``--resume`` of the same study: ``study`` as stored) or
    "extend" (``--into``: ``space`` holds only the trials the study lacks, as run ``run``)."""
    kind: str
    space: object                 # the StudySpace this run launches
    path: str                     # the study folder
    study: StudyRecord            # study.json as this run writes it
    options: RunOptions
    run: int = 1
    force: bool = False
    headline: str = ""            # what an extension adds and keeps (printed before it runs)

    @property
    def run_dir(self) -> str:
        return self.path if self.run == 1 else f"{self.path}/run-{self.run}"


def plan_run(space, flags: dict, *, storage: str, name: str | None = None,
             into: str | None = None, resume: bool = False, force: bool = False,
             command: str | None = None) -> Plan:
    """The Plan of ``run``: ``flags`` holds the resource flags by RunOptions field (None where
    not given). Refuses (StudyError, one line) what cannot run: a bad flag, a clash with an
    existing study, an extension of a search."""
    command = command or " ".join(["elm-study", *sys.argv[1:]])
    if into:
        return plan_extension(space, locate(into, storage), flags, command)
    options = workers_from_trials(space, RunOptions.resolve(flags, space.spec.get(
        "resources", {})))
    check_batch_split(space, options)
    check_pack_options(space, options)
    name = name or space.name
    if not name or "/" in name or name.startswith("."):
        raise StudyError(f"--name {name!r} is not a valid folder name")
    root = storage_root(storage)
    path = study_dir(root, name)
    if not is_remote(path) and has_study_file(path) and resume and not force:
        old = read_study(path)
        if old.space != space.name:
            raise StudyError(f"study folder {path} holds study '{old.space}', not "
                             f"'{space.name}'; choose another --name")
        return Plan("resume", space, path, old, old.options)
    if not force:
        refuse_clash(path)
    study = StudyRecord(name=name, space=space.name, storage=root, source=space.source,
                        metric=space.metric, mode=space.mode, search=space.is_search,
                        expected_trials=space.expected_trials, options=options,
                        runs=(_run_record(space, 1, options, command),))
    return Plan("new", packed(space, options.pack), path, study, options, force=force)


def workers_from_trials(space, options: RunOptions) -> RunOptions:
    """``base: {workers_per_trial: N}`` (or ``--set workers_per_trial=N``) asks for N workers
    like ``--workers-per-trial N`` does: the options say how each trial is dispatched, so they
    take the trials' value when no flag or ``resources:`` entry set one. A study runs one
    worker count; trials asking for several are refused here, before Ray starts."""
    if options.workers_per_trial > 1 or space.is_search:
        return options
    asked = sorted({cfg.workers_per_trial for cfg in space.configs()})
    if len(asked) > 1:
        raise StudyError(f"{space.source}: trials ask for workers_per_trial {asked}; a run "
                         "takes one worker count (--workers-per-trial N, or resources: "
                         "{workers_per_trial: N})")
    if asked and asked[0] > 1:
        return dataclasses.replace(options, workers_per_trial=asked[0])
    return options


def check_batch_split(space, options: RunOptions) -> None:
    """With N workers every trial must split its batch evenly: refused now, naming the trial."""
    if options.workers_per_trial > 1:
        for cfg in space.configs():
            cfg.replace(workers_per_trial=options.workers_per_trial)


def refuse_clash(path: str) -> None:
    """An existing study (or any non-empty folder) is never overwritten without --force."""
    p = Path(path)
    if is_remote(path) or not p.exists():
        return   # remote storage: Ray Tune creates it; study.json stays local-only for now
    if has_study_file(p) or any(p.iterdir()):
        what = f"of study '{read_study(p).space}'" if has_study_file(p) else "(not a study)"
        raise StudyError(f"study folder {p} already exists {what}; finish it with "
                         f"'elm-study resume {p}', add the trials it lacks with "
                         f"'--into {p.name}', or pass --force to replace it")


def _run_record(space, number: int, options: RunOptions, command: str, kept: int = 0,
                unfinished_elsewhere: int = 0) -> RunRecord:
    return RunRecord(run=number, options=options, launched=space.expected_trials, kept=kept,
                     unfinished_elsewhere=unfinished_elsewhere, source=space.source,
                     spec_file=f"study-run-{number}.yaml" if space.spec else None,
                     started_at=time.strftime("%Y-%m-%dT%H:%M:%S"), command=command)


def save_spec(path: Path, space, number: int) -> None:
    """The resolved study file of run ``number``, beside study.json (written once the run's
    resources are known good, so a refused run leaves no folder behind). A space built in
    Python rather than from a file has no spec to save; its trials' params.json say it all."""
    if space.spec and not is_remote(str(path)):
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / f"study-run-{number}.yaml").write_text(
            f"# run {number} of study '{Path(path).name}', resolved from {space.source}\n"
            + dump_yaml(spec_as_file(space.spec)))


def split_by_key(space, study_path: Path) -> tuple[list[bool], int, int]:
    """(launch this trial?, kept: finished there already, unfinished in an earlier run)."""
    from trainables.store import study_trials
    states: dict[str, set] = {}
    for t in study_trials(study_path):
        if t.trial_key:
            states.setdefault(t.trial_key, set()).add(t.finished)
    keys = space.trial_keys()
    if len(set(keys)) != len(keys):
        dup = next(k for k, n in Counter(keys).items() if n > 1)
        raise StudyError(f"{space.source}: two trials of this study have the same key {dup} "
                         "(the same configuration twice); remove the duplicate")
    launch_it = [k not in states for k in keys]
    kept = sum(1 for k in keys if True in states.get(k, ()))
    unfinished = sum(1 for k in keys if k in states and True not in states[k])
    return launch_it, kept, unfinished


def plan_extension(space, path: Path, flags: dict, command: str) -> Plan:
    """``run FILE --into STUDY``: only the trials whose key the study lacks, as a new run.
    The study file's ``resources:`` and the flags given apply to the new run (one line says
    what changed); what neither sets keeps the study's value."""
    if space.is_search:
        raise StudyError(f"--into: '{space.name}' is a search; a search continues with "
                         f"'elm-study resume {path}' (more samples: a new study)")
    old = read_study(path)
    if old.search or (path / "optuna.db").exists():
        raise StudyError(f"--into: study {path} is a search; it cannot take grid trials")
    last = old.last_run.options
    given = {**space.spec.get("resources", {}), **{k: v for k, v in flags.items()
                                                   if v is not None}}
    options = workers_from_trials(space, last.for_extension(given))
    check_batch_split(space, options)
    check_pack_options(space, options)
    launch_it, kept, unfinished = split_by_key(space, path)
    number = max(r.run for r in old.runs) + 1
    # only the members whose key is new, packed anew (by member key, not by old packs)
    sub = packed(space.subset(launch_it), options.pack)
    headline = (f"study {path.name}: {space.expected_trials} trials in {space.source}; "
                f"{kept} finished there already (kept), {unfinished} unfinished in earlier runs"
                f"{f' (finish them with: elm-study resume {path})' if unfinished else ''}; "
                f"adding {sub.expected_trials}"
                + (f" as run {number}" if sub.expected_trials else ""))
    changed = options.changes_from(last)
    if changed and sub.expected_trials:
        headline += f"\nrun {number} runs with {', '.join(changed)}"
    # every run records its own options, so that resume rebuilds each run's trainable
    study = dataclasses.replace(
        old, options=options,
        expected_trials=(old.expected_trials or 0) + sub.expected_trials,
        runs=old.runs + (_run_record(sub, number, options, command, kept, unfinished),))
    return Plan("extend", sub, str(path), study, options, run=number, headline=headline)


def missing_data(space, local: bool) -> list[str]:
    """One line per data location the study's trials name that does not hold its dataset
    (what is missing, where it looked, how to fix it), checked when the trials run on this
    machine (a local study); on a cluster the workers read their own disks and check there."""
    if not local:
        return []
    from trainables.data.registry import check_data_location
    seen, lines = set(), []
    for cfg in space.configs():
        where = (cfg.dataset, cfg.data_root, cfg.download, cfg.init_weights)
        if where in seen:
            continue
        seen.add(where)
        try:
            check_data_location(cfg)
        except FileNotFoundError as e:
            lines.append(f"{e} (the trials would fail on it; set data_root in the study "
                         "file, or --set data_root=PATH, or --download)")
    return lines

