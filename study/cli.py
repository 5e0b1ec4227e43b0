"""``python -m study`` / ``elm-study``: run, extend, resume and inspect studies.

    elm-study list                                  shipped studies and their trial counts
    elm-study show NAME|FILE [changes]              the resolved study: what would run
    elm-study run NAME|FILE [changes] [--name N | --into STUDY] [--storage PATH|URI]
                  [--address local|auto|HOST:PORT] [--cpus-per-trial X] [--gpus-per-trial F]
                  [--max-concurrent K] [--pack K] [--dashboard] [--dry-run] [--download]
                  [--force]
    elm-study resume NAME|PATH
    elm-study status NAME|PATH

  changes: --epochs E  --seeds 0,1,2  --set KEY=VALUE  --grid KEY=V1,V2|A..B|START:STOP:STEP
           --option KEY=VALUE (a search's num_samples / sampler / seed)

A study is a YAML file (the shipped ones: `elm-study list`; copy one from `elm-study show`).
`run --into STUDY` adds to an existing study only the trials whose key has no trial there yet;
resource flags given with it apply to those trials (one line says what changed).
Everything is validated before Ray starts: bad input exits with code 2 and one line naming
the file, key or flag, and creates nothing. A local study whose one trial needs more CPUs or
GPUs than this machine has is refused the same way (on a cluster: one warning line). A dry
run plans without the data (or the machine): it prints the plan, then one line per data
location the trials would miss and a line if one trial would not fit here, and exits 0.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from study.options import ClusterOptions, ConsoleOptions, RunOptions
from study.store import StudyError, locate
from trainables.store import read_study

DEFAULT_STORAGE = os.environ.get("ELM_STUDY_STORAGE", "./results")


def _parse_kv(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise StudyError(f"{what} expects key=value, got {item!r}")
        out[key.strip()] = value
    return out


def _parse_seeds(text: str | None, max_trials: int | None = None) -> list[int] | None:
    if text is None:
        return None
    from search_spaces.studyfile import Context, StudyFileError, parse_range
    try:
        seeds = [int(s) for s in parse_range(Context("--seeds", max_trials=max_trials), text)]
    except StudyFileError:
        raise
    except ValueError:
        raise StudyError(f"--seeds expects comma-separated integers or a range a..b, got "
                         f"{text!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise StudyError(f"--seeds expects non-negative integers, got {text!r}")
    return seeds


def _add_changes(p: argparse.ArgumentParser) -> None:
    p.add_argument("study", metavar="NAME|FILE",
                   help="a shipped study (see `elm-study list`) or a study file (.yaml)")
    p.add_argument("--epochs", type=int, default=None, help="every trial's epochs")
    p.add_argument("--seeds", default=None, help="0,1,2 or 0..4: replaces the seed axis")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="a TrialConfig field for every trial (a loss "
                   "hyper-parameter: for the methods whose loss takes it)")
    p.add_argument("--grid", dest="axes", action="append", default=[],
                   metavar="KEY=VALUES", help="add or replace an axis: V1,V2,..., A..B "
                   "(integers) or START:STOP:STEP (exact decimals); both ends included")
    p.add_argument("--option", dest="options", action="append", default=[],
                   metavar="KEY=VALUE", help="a search setting (num_samples, sampler, seed)")
    p.add_argument("--download", action="store_true",
                   help="let trials download a missing dataset (sets download=true)")
    p.add_argument("--max-trials", type=int, default=None, metavar="N",
                   help="refuse a study of more than N trials, counted before it is built "
                        "(default: $ELM_STUDY_MAX_TRIALS, else 100000)")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (every subcommand's flags are here, nowhere else)."""
    p = argparse.ArgumentParser(prog="elm-study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the shipped studies and their trial counts")
    show = sub.add_parser("show", help="print the resolved study: file, trial count, samples")
    _add_changes(show)
    show.add_argument("--samples", type=int, default=5, help="trial configs to print")
    _add_run(sub)
    for name, helptext in (("resume", "finish an interrupted study (every run of it)"),
                           ("status", "trial counts, runs and best so far, read from storage")):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("study", help="study name (under --storage) or folder")
        sp.add_argument("--storage", default=DEFAULT_STORAGE)
        if name == "resume":
            sp.add_argument("--address", default="local")
            sp.add_argument("--dashboard", action="store_true")
            sp.add_argument("--dashboard-host", default="127.0.0.1")
    for name in ("run", "resume"):
        _add_console(sub.choices[name])
    status = sub.choices["status"]
    status.add_argument("--watch", action="store_true",
                        help="refresh from storage until the study ends (Ctrl-C to leave)")
    status.add_argument("--interval", type=float, default=10.0, metavar="S",
                        help="seconds between refreshes with --watch (default 10)")
    od = sub.add_parser("optuna-dashboard",
                        help="open an Optuna study's database in optuna-dashboard")
    od.add_argument("study", help="study name (under --storage) or folder")
    od.add_argument("--storage", default=DEFAULT_STORAGE)
    od.add_argument("--port", type=int, default=8080)
    return p


def _add_run(sub) -> None:
    from search_spaces import SPACES
    run = sub.add_parser("run", help="launch a study, or add its missing trials to one",
                         epilog="shipped studies: " + ", ".join(SPACES))
    _add_changes(run)
    where = run.add_mutually_exclusive_group()
    where.add_argument("--name", help="study name (default: the study file's name)")
    where.add_argument("--into", metavar="STUDY", help="an existing study (name or folder): "
                       "launch only the trials whose key it does not hold yet")
    run.add_argument("--storage", default=DEFAULT_STORAGE,
                     help="local folder or s3:// / gs:// URI every node can reach")
    run.add_argument("--address", default="local",
                     help="'local' starts Ray here; 'auto' or HOST:PORT joins a running cluster")
    # resource flags: None = not given (the study file's resources:, else RunOptions' default;
    # with --into, the study's own value), so that a given flag is never mistaken for a default
    run.add_argument("--cpus-per-trial", type=float, default=None, help="default 1")
    run.add_argument("--gpus-per-trial", type=float, default=None,
                     help="fraction of a GPU per trial (0.25 packs four trials per GPU); "
                          "default: the study file's, else 0.25 if the cluster has GPUs, else 0")
    run.add_argument("--max-concurrent", type=int, default=None)
    run.add_argument("--workers-per-trial", type=int, default=None,
                     help="N > 1 runs each trial data-parallel on N Ray Train workers (one GPU "
                          "each where the cluster has GPUs; docs/distributed.md); default 1")
    run.add_argument("--pack", type=int, default=None, metavar="K",
                     help="train up to K trials of a grid whose pack keys agree as one fused "
                          "network in one Tune trial (ResNet32; pays on a GPU, not a CPU; "
                          "docs/packing.md); default 1")
    run.add_argument("--max-failures", type=int, default=None,
                     help="retries of a failed trial, each from its last checkpoint (default 3)")
    run.add_argument("--dashboard", action="store_true",
                     help="start Ray's dashboard (local runs) and print its URL")
    run.add_argument("--dashboard-host", default="127.0.0.1",
                     help="address the dashboard binds to; anything but loopback exposes an "
                          "unauthenticated-by-default control plane")
    run.add_argument("--dry-run", action="store_true",
                     help="validate everything and print what would run (and any data it "
                          "lacks); launch nothing")
    run.add_argument("--force", action="store_true",
                     help="replace an existing study of the same name (deletes it)")
    run.add_argument("--resume", action="store_true",
                     help="if the study exists (same study file), resume it instead of refusing")


def _add_console(parser) -> None:
    """``--verbose`` and ``--log`` for ``run`` and ``resume``."""
    parser.add_argument("--verbose", action="store_true",
                        help="keep Ray Tune's own status tables and INFO logging")
    parser.add_argument("--log", dest="log", action="append", default=[],
                        metavar="mlflow[=URI]|wandb",
                        help="also log every trial to MLflow (default store: "
                             "sqlite:///<study>/mlflow.db) or Weights & Biases")


# =========================================================================================
# flags -> options
# =========================================================================================
def console_options(args) -> ConsoleOptions:
    """``--verbose``/``--log`` (a bad --log is refused here, before Ray) and the job's name."""
    from study.loggers import parse_log_flags
    from study.progress import job_name_of
    name = (getattr(args, "name", None) or getattr(args, "into", None)
            or getattr(args, "study", None))
    return ConsoleOptions(verbose=bool(getattr(args, "verbose", False)),
                          log=tuple(parse_log_flags(getattr(args, "log", None) or [])),
                          job_name=job_name_of(name))


def cluster_options(args) -> ClusterOptions:
    return ClusterOptions(address=args.address, dashboard=args.dashboard,
                          dashboard_host=args.dashboard_host)


def resource_flags(args) -> dict:
    """The resource flags by RunOptions field; None where not given."""
    return {name: getattr(args, name) for name in RunOptions.fields()}


# =========================================================================================
# commands
# =========================================================================================
def cmd_list(args, console: ConsoleOptions) -> int:
    from search_spaces import list_spaces
    for name, description, n in list_spaces():
        print(f"{name:14s} {n:5d} trials  {description}")
    return 0


def build_space(args, validate: bool = True):
    """The study file with the command line's changes, every trial validated."""
    from search_spaces import get_space
    from trainables.config import parse_value
    overrides = {k: parse_value(k, v) for k, v in _parse_kv(args.overrides, "--set").items()}
    if args.download:
        overrides["download"] = True
    options = {k: _coerce_option(v) for k, v in _parse_kv(args.options, "--option").items()}
    space = get_space(args.study, epochs=args.epochs,
                      seeds=_parse_seeds(args.seeds, args.max_trials), overrides=overrides,
                      axes=_parse_kv(args.axes, "--grid"), max_trials=args.max_trials,
                      **options)
    if validate:
        space.validate()
    return space


def _coerce_option(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def cmd_show(args, console: ConsoleOptions) -> int:
    """The resolved study. A bad field refuses it, as `run` would; trials whose data cannot
    exist are reported under it (show shows: the file is printed to be edited)."""
    from search_spaces.studyfile import StudyFileError
    from study.plan import describe
    from trainables.data.registry import DataSizeError
    space = build_space(args, validate=False)
    configs, refused = space.built()
    total = len(configs) + len(refused)
    bad_fields = [r for r in refused if not isinstance(r[2], DataSizeError)]
    if bad_fields:
        raise StudyFileError(space.refusal(bad_fields, total))
    print(describe(space, samples=args.samples))
    if refused:
        print(f"# cannot run as it is: {space.refusal(refused, total)}")
    return 0


def cmd_run(args, console: ConsoleOptions) -> int:
    """Plan (everything that can fail before Ray starts), then a dry run's listing or the run."""
    from study.plan import describe, missing_data, plan_run
    from study.store import check_writable
    space = build_space(args)
    cluster = cluster_options(args)
    plan = plan_run(space, resource_flags(args), storage=args.storage, name=args.name,
                    into=args.into, resume=args.resume, force=args.force)
    unplaced = None
    if cluster.local:    # one trial must fit this machine: else Ray would wait forever
        from study.placement import check_placement, this_machine
        try:
            check_placement(plan.options, this_machine(), local=True)
        except StudyError as e:
            if not args.dry_run:
                raise
            unplaced = str(e)
    missing = missing_data(plan.space, cluster.local)
    if missing and not args.dry_run:
        raise StudyError(missing[0])
    check_writable(str(Path(plan.path).parent) if plan.kind == "extend" else plan.study.storage,
                   create=not args.dry_run)
    if plan.headline:
        print(plan.headline, flush=True)
    if args.dry_run:
        print(describe(plan.space, samples=5, path=plan.run_dir, full=False))
        from study.placement import asks_line
        print(asks_line(plan.options))
        if plan.options.pack > 1:
            from study.packs import pack_lines
            print("\n".join(pack_lines(plan.space, plan.options.pack)))
        if plan.options.workers_per_trial > 1:
            from study.placement import fits_here
            print(fits_here(plan.options))
        from study.projection import dry_run_lines
        print("\n".join(dry_run_lines(plan)))   # its size in images, its projected time
        for line in missing:   # a dry run plans without the data: it says what is missing
            print(f"missing data: {line}")
        if unplaced:           # ... and maybe for another machine: it says what does not fit
            print(f"cannot place here: {unplaced}")
        return 0
    from study.launcher import execute
    from study.progress import prepare_console
    prepare_console(console)
    return execute(plan, cluster, console)


def cmd_resume(args, console: ConsoleOptions) -> int:
    from study.launcher import resume_study
    from study.progress import prepare_console
    path = locate(args.study, args.storage)
    prepare_console(console)
    return resume_study(path, read_study(path), cluster=cluster_options(args), console=console)


def cmd_status(args, console: ConsoleOptions) -> int:
    from study.summary import print_status
    path = locate(args.study, args.storage)
    if getattr(args, "watch", False):
        from study.watch import watch_status
        return watch_status(path, args.interval)
    print_status(path, read_study(path))
    return 0


def cmd_optuna_dashboard(args, console: ConsoleOptions) -> int:
    from study.watch import optuna_dashboard
    return optuna_dashboard(locate(args.study, args.storage), args.port)


COMMANDS = {"list": cmd_list, "show": cmd_show, "run": cmd_run, "resume": cmd_resume,
            "status": cmd_status, "optuna-dashboard": cmd_optuna_dashboard}


def main(argv=None) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")   # no phoning home by default
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args, console_options(args))
    except (StudyError, ValueError) as e:
        print(f"elm-study: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
