"""``python -m study`` / ``elm-study``: run, extend, resume and inspect studies.

    elm-study list                                  shipped studies and their trial counts
    elm-study show NAME|FILE [changes]              the resolved study: what would run
    elm-study run NAME|FILE [changes] [--name N | --into STUDY] [--storage PATH|URI]
                  [--address local|auto|HOST:PORT] [--cpus-per-trial X] [--gpus-per-trial F]
                  [--max-concurrent K] [--dashboard] [--dry-run] [--download] [--force]
    elm-study resume NAME|PATH
    elm-study status NAME|PATH

  changes: --epochs E  --seeds 0,1,2  --set KEY=VALUE  --grid KEY=V1,V2|A..B|START:STOP:STEP
           --option KEY=VALUE (a search's num_samples / sampler / seed)

A study is a YAML file (the shipped ones: `elm-study list`; copy one from `elm-study show`).
`run --into STUDY` adds to an existing study only the trials whose key has no trial there yet.
Everything is validated before Ray starts: bad input exits with code 2 and one line naming
the file, key or flag, and creates nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from study.store import StudyError, locate, read_meta, storage_root, study_dir

DEFAULT_STORAGE = os.environ.get("ELM_STUDY_STORAGE", "./results")


def _parse_kv(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise StudyError(f"{what} expects key=value, got {item!r}")
        out[key.strip()] = value
    return out


def _parse_seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    from search_spaces.studyfile import Context, parse_range
    try:
        seeds = [int(s) for s in parse_range(Context("--seeds"), text)]
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


def build_parser() -> argparse.ArgumentParser:
    from search_spaces import SPACES
    p = argparse.ArgumentParser(prog="elm-study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the shipped studies and their trial counts")
    show = sub.add_parser("show", help="print the resolved study: file, trial count, samples")
    _add_changes(show)
    show.add_argument("--samples", type=int, default=5, help="trial configs to print")

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
    run.add_argument("--cpus-per-trial", type=float, default=None, help="default 1")
    run.add_argument("--gpus-per-trial", type=float, default=None,
                     help="fraction of a GPU per trial (0.25 packs four trials per GPU); "
                          "default: the study file's, else 0.25 if the cluster has GPUs, else 0")
    run.add_argument("--max-concurrent", type=int, default=None)
    run.add_argument("--workers-per-trial", type=int, default=None,
                     help="N > 1 runs each trial data-parallel on N Ray Train workers (one GPU "
                          "each where the cluster has GPUs; docs/distributed.md); default 1")
    run.add_argument("--max-failures", type=int, default=None,
                     help="retries of a failed trial, each from its last checkpoint (default 3)")
    run.add_argument("--dashboard", action="store_true",
                     help="start Ray's dashboard (local runs) and print its URL")
    run.add_argument("--dashboard-host", default="127.0.0.1",
                     help="address the dashboard binds to; anything but loopback exposes an "
                          "unauthenticated-by-default control plane")
    run.add_argument("--dry-run", action="store_true",
                     help="validate everything and print what would run; launch nothing")
    run.add_argument("--force", action="store_true",
                     help="replace an existing study of the same name (deletes it)")
    run.add_argument("--resume", action="store_true",
                     help="if the study exists (same study file), resume it instead of refusing")

    for name, helptext in (("resume", "finish an interrupted study (every run of it)"),
                           ("status", "trial counts, runs and best so far, read from storage")):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("study", help="study name (under --storage) or folder")
        sp.add_argument("--storage", default=DEFAULT_STORAGE)
        if name == "resume":
            sp.add_argument("--address", default="local")
            sp.add_argument("--dashboard", action="store_true")
            sp.add_argument("--dashboard-host", default="127.0.0.1")
    from study.watch import add_watch_arguments   # --verbose, --log, status --watch, ...
    add_watch_arguments(sub)
    return p


# =========================================================================================
# commands
# =========================================================================================
def cmd_list(args) -> int:
    from search_spaces import list_spaces
    for name, description, n in list_spaces():
        print(f"{name:14s} {n:5d} trials  {description}")
    return 0


def build_space(args):
    """The study file with the command line's changes, every trial validated."""
    from search_spaces import get_space
    from trainables.config import parse_value
    overrides = {k: parse_value(k, v) for k, v in _parse_kv(args.overrides, "--set").items()}
    if args.download:
        overrides["download"] = True
    options = {k: _coerce_option(v) for k, v in _parse_kv(args.options, "--option").items()}
    space = get_space(args.study, epochs=args.epochs, seeds=_parse_seeds(args.seeds),
                      overrides=overrides, axes=_parse_kv(args.axes, "--grid"), **options)
    space.validate()
    return space


def _coerce_option(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def cmd_show(args) -> int:
    from study.plan import describe
    print(describe(build_space(args), samples=args.samples))
    return 0


def prepare_run(args):
    """Everything that can fail before Ray starts: returns (space, study path, meta)."""
    space = build_space(args)
    res = space.spec.get("resources", {})
    meta = {"cpus_per_trial": args.cpus_per_trial, "gpus_per_trial": args.gpus_per_trial,
            "max_concurrent": args.max_concurrent, "max_failures": args.max_failures,
            "workers_per_trial": args.workers_per_trial}
    for k, default in (("cpus_per_trial", 1.0), ("gpus_per_trial", None),
                       ("max_concurrent", None), ("max_failures", 3),
                       ("workers_per_trial", 1)):
        if meta[k] is None:
            meta[k] = res.get(k, default)
    for flag, v in (("--cpus-per-trial", meta["cpus_per_trial"]),
                    ("--gpus-per-trial", meta["gpus_per_trial"]),
                    ("--max-failures", meta["max_failures"])):
        if v is not None and v < 0:
            raise StudyError(f"{flag} must be >= 0, got {v}")
    if meta["max_concurrent"] is not None and meta["max_concurrent"] < 1:
        raise StudyError(f"--max-concurrent must be >= 1, got {meta['max_concurrent']}")
    if meta["workers_per_trial"] < 1:
        raise StudyError(f"--workers-per-trial must be >= 1, got {meta['workers_per_trial']}")
    if meta["workers_per_trial"] > 1:   # every trial must split its batch evenly
        for cfg in space.configs():
            cfg.replace(workers_per_trial=meta["workers_per_trial"])
    check_data(space, args.address)
    if args.into:
        path = locate(args.into, args.storage)
        name, root = path.name, str(path.parent)
    else:
        name = args.name or space.name
        if not name or "/" in name or name.startswith("."):
            raise StudyError(f"--name {name!r} is not a valid folder name")
        root = storage_root(args.storage)
        path = study_dir(root, name)
    meta.update({"space": space.name, "source": space.source, "name": name, "storage": root,
                 "metric": space.metric, "mode": space.mode, "search": space.is_search})
    return space, path, meta


def check_data(space, address) -> None:
    """Each data location the study's trials name holds its dataset, checked here when the
    trials run on this machine (a local study): a wrong data_root fails now, in one line,
    not in every trial. On a cluster the workers read their own disks; they check there."""
    if address not in (None, "local"):
        return
    from trainables.data.registry import check_data_location
    seen = set()
    for cfg in space.configs():
        where = (cfg.dataset, cfg.data_root, cfg.download, cfg.init_weights)
        if where in seen:
            continue
        seen.add(where)
        try:
            check_data_location(cfg)
        except FileNotFoundError as e:
            raise StudyError(f"{e} (the trials would fail on it; set data_root in the study "
                             "file, or --set data_root=PATH, or --download)") from None


def cmd_run(args) -> int:
    from study import plan
    from study.store import check_writable
    space, path, meta = prepare_run(args)
    check_writable(meta["storage"], create=not args.dry_run)
    if args.into:
        return plan.extend(space, path, meta, args)
    if args.dry_run:
        print(plan.describe(space, samples=5, path=path, full=False))
        if meta["workers_per_trial"] > 1:
            print(plan.placement(meta))
        return 0
    return plan.launch(space, path, meta, args)


def cmd_resume(args) -> int:
    from study.launcher import resume_study
    path = locate(args.study, args.storage)
    return resume_study(path, read_meta(path), address=args.address, dashboard=args.dashboard,
                        dashboard_host=args.dashboard_host)


def cmd_status(args) -> int:
    from study.launcher import print_status
    path = locate(args.study, args.storage)
    if getattr(args, "watch", False):
        from study.watch import watch_status
        return watch_status(path, args.interval)
    print_status(path, read_meta(path))
    return 0


def cmd_optuna_dashboard(args) -> int:
    from study.watch import optuna_dashboard
    return optuna_dashboard(locate(args.study, args.storage), args.port)


COMMANDS = {"list": cmd_list, "show": cmd_show, "run": cmd_run, "resume": cmd_resume,
            "status": cmd_status, "optuna-dashboard": cmd_optuna_dashboard}


def main(argv=None) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")   # no phoning home by default
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from study.progress import configure
        configure(args)   # console and --log choices, the Ray job's name
        return COMMANDS[args.command](args)
    except (StudyError, ValueError) as e:
        print(f"elm-study: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
