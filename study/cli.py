"""``python -m study`` / ``elm-study``: run, resume and inspect studies.

    elm-study list
    elm-study run SPACE [--name N] [--storage PATH|URI] [--address local|auto|HOST:PORT]
                  [--cpus-per-trial X] [--gpus-per-trial F] [--max-concurrent K]
                  [--epochs E] [--seeds 0,1,2] [--set key=value ...] [--option key=value ...]
                  [--dashboard] [--dry-run] [--download] [--force]
    elm-study resume NAME|PATH
    elm-study status NAME|PATH

Everything is validated before Ray starts: a bad space, option, override or resource request
exits with code 2 and one line naming the problem, and creates nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from pathlib import Path

from study.store import (STUDY_FILE, StudyError, check_writable, locate, read_meta,
                         storage_root, study_dir)

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
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise StudyError(f"--seeds expects comma-separated integers, got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise StudyError(f"--seeds expects non-negative integers, got {text!r}")
    return seeds


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="elm-study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the named search spaces and their trial counts")

    run = sub.add_parser("run", help="launch a study of a named space")
    run.add_argument("space")
    run.add_argument("--name", help="study name (default: the space's name)")
    run.add_argument("--storage", default=DEFAULT_STORAGE,
                     help="local folder or s3:// / gs:// URI every node can reach")
    run.add_argument("--address", default="local",
                     help="'local' starts Ray here; 'auto' or HOST:PORT joins a running cluster")
    run.add_argument("--cpus-per-trial", type=float, default=1.0)
    run.add_argument("--gpus-per-trial", type=float, default=None,
                     help="fraction of a GPU per trial (0.25 packs four trials per GPU); "
                          "default 1 if the cluster has GPUs, else 0")
    run.add_argument("--max-concurrent", type=int, default=None)
    run.add_argument("--max-failures", type=int, default=3,
                     help="retries of a failed trial, each from its last checkpoint")
    run.add_argument("--epochs", type=int, default=None)
    run.add_argument("--seeds", default=None, help="comma-separated, replaces the seed axis")
    run.add_argument("--set", dest="overrides", action="append", default=[],
                     metavar="KEY=VALUE", help="override a TrialConfig field for every trial")
    run.add_argument("--option", dest="options", action="append", default=[],
                     metavar="KEY=VALUE", help="a space option (e.g. dataset=cifar100)")
    run.add_argument("--download", action="store_true",
                     help="let trials download a missing dataset (sets download=true)")
    run.add_argument("--dashboard", action="store_true",
                     help="start Ray's dashboard (local runs) and print its URL")
    run.add_argument("--dashboard-host", default="127.0.0.1",
                     help="address the dashboard binds to; anything but loopback exposes an "
                          "unauthenticated-by-default control plane")
    run.add_argument("--dry-run", action="store_true", help="validate and print, launch nothing")
    run.add_argument("--force", action="store_true",
                     help="replace an existing study of the same name (deletes it)")
    run.add_argument("--resume", action="store_true",
                     help="if the study exists (same space), resume it instead of refusing")

    for name, helptext in (("resume", "finish an interrupted study"),
                           ("status", "trial counts and best so far, read from storage")):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("study", help="study name (under --storage) or folder")
        sp.add_argument("--storage", default=DEFAULT_STORAGE)
        if name == "resume":
            sp.add_argument("--address", default="local")
            sp.add_argument("--dashboard", action="store_true")
            sp.add_argument("--dashboard-host", default="127.0.0.1")
    return p


# =========================================================================================
# commands
# =========================================================================================
def cmd_list(args) -> int:
    from search_spaces import list_spaces
    for name, description, n in list_spaces():
        print(f"{name:14s} {n:5d} trials  {description}")
    return 0


def prepare_run(args):
    """Everything that can fail before Ray starts: returns (space, study path, meta)."""
    from search_spaces import get_space
    from trainables.config import parse_value
    overrides = {k: parse_value(k, v) for k, v in _parse_kv(args.overrides, "--set").items()}
    if args.download:
        overrides["download"] = True
    options = {k: _coerce_option(v) for k, v in _parse_kv(args.options, "--option").items()}
    space = get_space(args.space, epochs=args.epochs, seeds=_parse_seeds(args.seeds),
                      overrides=overrides, **options)
    space.validate()
    for flag, v in (("--cpus-per-trial", args.cpus_per_trial),
                    ("--gpus-per-trial", args.gpus_per_trial)):
        if v is not None and v < 0:
            raise StudyError(f"{flag} must be >= 0, got {v}")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise StudyError(f"--max-concurrent must be >= 1, got {args.max_concurrent}")
    name = args.name or space.name
    if not name or "/" in name or name.startswith("."):
        raise StudyError(f"--name {name!r} is not a valid folder name")
    root = storage_root(args.storage)
    path = study_dir(root, name)
    meta = {"space": space.name, "options": options, "overrides": overrides,
            "epochs": args.epochs, "seeds": _parse_seeds(args.seeds), "name": name,
            "storage": root, "expected_trials": space.expected_trials,
            "cpus_per_trial": args.cpus_per_trial, "gpus_per_trial": args.gpus_per_trial,
            "max_concurrent": args.max_concurrent, "max_failures": args.max_failures,
            "metric": space.metric, "mode": space.mode}
    return space, path, meta


def _coerce_option(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def cmd_run(args) -> int:
    space, path, meta = prepare_run(args)
    if args.dry_run:
        dicts = space.trial_dicts()
        print(f"space {space.name}: {space.expected_trials} trials -> {path}")
        for d in dicts[:5]:
            print("  " + json.dumps(d, ensure_ascii=False))
        if len(dicts) > 5:
            print(f"  ... ({len(dicts) - 5} more)")
        return 0
    from study.launcher import fit_study, new_study_dir, resume_study
    check_writable(meta["storage"])
    if args.resume and not args.force and (Path(path) / STUDY_FILE).exists():
        old = read_meta(Path(path))
        if old.get("space") != space.name:
            raise StudyError(f"study folder {path} holds space '{old.get('space')}', not "
                             f"'{space.name}'; choose another --name")
        return resume_study(Path(path), old, address=args.address, dashboard=args.dashboard,
                            dashboard_host=args.dashboard_host)
    new_study_dir(path, meta, force=args.force)
    return fit_study(space, path, meta, address=args.address, dashboard=args.dashboard,
                     dashboard_host=args.dashboard_host)


def cmd_resume(args) -> int:
    from study.launcher import resume_study
    path = locate(args.study, args.storage)
    return resume_study(path, read_meta(path), address=args.address, dashboard=args.dashboard,
                        dashboard_host=args.dashboard_host)


def cmd_status(args) -> int:
    from study.launcher import print_status
    path = locate(args.study, args.storage)
    print_status(path, read_meta(path))
    return 0


COMMANDS = {"list": cmd_list, "run": cmd_run, "resume": cmd_resume, "status": cmd_status}


def main(argv=None) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")   # no phoning home by default
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (StudyError, ValueError) as e:
        print(f"elm-study: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
