"""What a running study prints: one line per trial evaluation, in the method's own words.

    ELM + DRW (λ=0.5) cifar10-lt r=100 seed 1  ep 120/200  top-1 71.24 (best 71.90 @115)
        many 88.1 med 70.2 few 52.3  2.9 s/ep  eta 4 min

plus a study line every ~30 s (done / running / pending / failed, epochs, projected end), the
start, end, retry and failure of every trial, and on Ctrl-C the exact ``elm-study resume``
command. Ray Tune's own status tables, config dumps and per-checkpoint INFO lines are turned
off (``--verbose`` keeps them); warnings and errors from Ray still print.

The CLI calls :func:`configure` once with its parsed arguments; the launcher then calls
:func:`trainable` and :func:`watch_tuner` while it builds the Tuner.
"""
from __future__ import annotations

import json
import logging
import math
import os

from trainables.methods import flatten_trial

SETTINGS = {"verbose": False, "log": [], "name": None}
STUDY_LINE_EVERY_S = 30.0
_DROP = ("Resume experiment with:", "Trials did not complete", "Checkpoint successfully created")


def add_flags(parser, *, logs: bool = True) -> None:
    """``--verbose`` and ``--log`` for ``run`` and ``resume``."""
    parser.add_argument("--verbose", action="store_true",
                        help="keep Ray Tune's own status tables and INFO logging")
    if logs:
        parser.add_argument("--log", dest="log", action="append", default=[],
                            metavar="mlflow[=URI]|wandb",
                            help="also log every trial to MLflow (default store: "
                                 "sqlite:///<study>/mlflow.db) or Weights & Biases")


def configure(args) -> None:
    """Remember the console/logging choices; refuse a bad ``--log`` before Ray starts; name
    the Ray job after the study (the dashboard's Jobs page)."""
    from study.loggers import parse_log_flags
    SETTINGS["verbose"] = bool(getattr(args, "verbose", False))
    SETTINGS["log"] = parse_log_flags(getattr(args, "log", None) or [])
    if args.command not in ("run", "resume") or getattr(args, "dry_run", False):
        return
    if not SETTINGS["verbose"]:
        # Tune's new console output prints its config box, paths and per-error blocks even
        # at verbose=0; the classic reporter at verbose=0 prints nothing (we print our lines)
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    name = (getattr(args, "name", None) or getattr(args, "into", None)
            or getattr(args, "study", None))
    if name:
        base = os.path.basename(str(name).rstrip("/"))
        SETTINGS["name"] = base[:-5] if base.endswith(".yaml") else base
        name_ray_job(SETTINGS["name"])


def name_ray_job(name: str) -> None:
    """The driver's job metadata ``job_name`` is what the Jobs page shows (else "-").
    ``ray.init`` merges the job config injected through this variable (that is how ``ray job
    submit`` passes its own); a submitted job keeps the name it was given."""
    var = "RAY_JOB_CONFIG_JSON_ENV_VAR"   # ray._private.runtime_env.constants (importing
    # ray here would cost every CLI command seconds)
    if var not in os.environ:
        os.environ[var] = json.dumps({"metadata": {"job_name": f"elm-study {name}"}})


class _DropChatter(logging.Filter):
    """Drops Tune's "Tuner.restore(...)" hint (we print our own resume command) and the
    per-checkpoint INFO line; everything else, errors included, passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        if msg.startswith("Failed to fetch metrics for"):
            # after Ctrl-C: trials that never started have no result file yet; any other
            # reason to fail still prints
            failures = msg.splitlines()[1:]
            return not all("FileNotFoundError" in f and "were not found" in f
                           for f in failures)
        return not any(d in msg for d in _DROP) or record.levelno >= logging.CRITICAL


def quiet_ray_logging() -> None:
    """Called after ``ray.init`` (which sets the 'ray' logger to INFO): keep warnings+."""
    if SETTINGS["verbose"]:
        return
    logging.getLogger("ray").setLevel(logging.WARNING)
    for name in ("ray.tune", "ray.tune.tune", "ray.tune.analysis.experiment_analysis",
                 "ray.tune.execution.tune_controller", "ray.train"):
        logging.getLogger(name).addFilter(_DropChatter())
    for h in logging.getLogger("ray").handlers:
        h.addFilter(_DropChatter())


def trainable(train_fn, resources: dict):
    """The trial actor (named after its trial on the dashboard) with its resources."""
    from ray import tune

    from trainables.ray_metrics import trial_actor
    return tune.with_resources(trial_actor(train_fn, quiet=not SETTINGS["verbose"]), resources)


def watch_tuner(tune_config, run_config, meta: dict, path: str) -> None:
    """Add the progress printer and the ``--log`` callbacks; silence Tune's tables."""
    from study.loggers import logger_callbacks
    quiet_ray_logging()
    callbacks = list(run_config.callbacks or [])
    from study.progress_callback import StudyProgress
    callbacks.append(StudyProgress(meta, path))
    callbacks.extend(logger_callbacks(meta, path, SETTINGS["log"]))
    run_config.callbacks = callbacks
    run_config.verbose = 2 if SETTINGS["verbose"] else 0
    print_banner(meta, path)


def watch_restored(tuner, meta: dict, path: str) -> None:
    """``Tuner.restore`` brings back the callbacks pickled at launch: use this command's
    (its --verbose / --log) instead. Ray 2.60 has no public setter, hence the private path."""
    try:
        internal = tuner._local_tuner
        run_config, tune_config = internal._run_config, internal._tune_config
    except AttributeError:   # another Ray version: keep the restored ones
        return
    run_config.callbacks = [c for c in run_config.callbacks or []
                            if not type(c).__module__.startswith("study.")]
    watch_tuner(tune_config, run_config, meta, path)


def resume_command(meta: dict, path: str) -> str:
    storage = meta.get("storage")
    return (f"elm-study resume {meta.get('name')}" + (f" --storage {storage}" if storage else "")
            if storage and str(path).startswith(str(storage)) else f"elm-study resume {path}")


def print_banner(meta: dict, path: str) -> None:
    """Where to look while it runs, and how to continue if this driver goes away."""
    try:
        import ray
        port = ray._private.worker.global_worker.node.metrics_export_port
        print(f"trial metrics (Prometheus): http://127.0.0.1:{port}/metrics", flush=True)
    except Exception:   # joined a cluster: its nodes' agents export them
        pass
    if _dashboard_url():   # init_ray printed its URL
        print("the dashboard asks for a token: `ray get-auth-token` prints it (it is also in "
              "~/.ray/auth_token)", flush=True)
    print(f"tensorboard --logdir {path}", flush=True)
    print(f"if this driver stops: {resume_command(meta, path)}", flush=True)


def _dashboard_url() -> str | None:
    try:
        import ray
        return ray._private.worker.global_worker.node.address_info.get("webui_url") or None
    except Exception:
        return None


# =========================================================================================
# the callback
# =========================================================================================
def _fmt_minutes(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _num(v, fmt: str) -> str:
    return format(v, fmt) if isinstance(v, (int, float)) and math.isfinite(v) else "–"


def trial_words(config: dict, trial_id: str = "", label: str | None = None) -> str:
    """'ELM + DRW (λ=0.5) cifar10-lt r=100 seed 1'."""
    from trainables.ray_metrics import trial_name
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
    best = f"(best {_num(result.get('best_test_top1'), '.2f')} @{result.get('best_epoch', '?')})"
    groups = "  ".join(f"{short} {_num(result.get(f'test_{g}'), '.1f')}"
                       for g, short in (("many", "many"), ("medium", "med"), ("few", "few")))
    return (f"{trial_words(config, label=result.get('method'))}  ep {epoch}/{epochs}  "
            f"top-1 {_num(result.get('test_top1'), '.2f')} {best}  {groups}  "
            f"{_num(s_per_epoch, '.1f')} s/ep  eta {_fmt_minutes(left)}")
