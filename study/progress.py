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
import sys
import time

from trainables.methods import flatten_trial

SETTINGS = {"verbose": False, "log": [], "name": None}
STUDY_LINE_EVERY_S = 30.0
_DROP = ("Resume experiment with:", "Trials did not complete",
         "Could not fetch metrics for", "Checkpoint successfully created")


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
    from ray._private.runtime_env.constants import RAY_JOB_CONFIG_JSON_ENV_VAR as var
    if var not in os.environ:
        os.environ[var] = json.dumps({"metadata": {"job_name": f"elm-study {name}"}})


class _DropChatter(logging.Filter):
    """Drops Tune's "Tuner.restore(...)" hint (we print our own resume command) and the
    per-checkpoint INFO line; everything else, errors included, passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
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


def _callback_base():
    from ray.tune import Callback
    return Callback


class StudyProgress(_callback_base()):
    """Tune callback printing the study's progress (driver side; Ray-free formatting)."""

    def __init__(self, meta: dict, path: str, every_s: float = STUDY_LINE_EVERY_S):
        # Tune pickles its callbacks into the experiment state: plain data only here
        self.meta, self.path, self.every_s = meta, str(path), every_s
        self.setup()

    def setup(self, **info):
        """Called by Tune when the experiment (or its resumption) starts."""
        self.epoch_times: dict[str, list[float]] = {}
        self.epochs_done: dict[str, int] = {}
        self.start = self.last_line = time.time()
        self.epochs_at_start: int | None = None

    def say(self, text: str) -> None:
        print(text, file=sys.stdout, flush=True)

    # ---- per trial ----------------------------------------------------------------------
    def on_trial_start(self, iteration, trials, trial, **info):
        self.say(f"start  {trial_words(trial.config, trial.trial_id)}")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        times = self.epoch_times.setdefault(trial.trial_id, [])
        if isinstance(result.get("time_this_iter_s"), (int, float)):
            times.append(float(result["time_this_iter_s"]))
        self.epochs_done[trial.trial_id] = int(result.get("epoch") or 0)
        if result.get("test_top1") is None:   # not an evaluation epoch
            return
        recent = times[-5:]
        s_per_epoch = sum(recent) / len(recent) if recent else math.nan
        self.say(progress_line(trial.config, result, s_per_epoch))

    def on_trial_complete(self, iteration, trials, trial, **info):
        r = trial.last_result or {}
        self.say(f"done   {trial_words(trial.config, trial.trial_id, r.get('method'))}  "
                 f"top-1 {_num(r.get('test_top1'), '.2f')}  best "
                 f"{_num(r.get('best_test_top1'), '.2f')} @{r.get('best_epoch', '?')}  "
                 f"({r.get('status', 'finished')}, {r.get('epoch', '?')} epochs)")

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.say(f"retry  {trial_words(trial.config, trial.trial_id)}  failure "
                 f"{trial.num_failures} of at most {self.meta.get('max_failures', '?')}: "
                 f"{_error_line(trial)}; continuing from its last checkpoint")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.say(f"FAILED {trial_words(trial.config, trial.trial_id)} after "
                 f"{trial.num_failures} failure(s): {_error_line(trial)}")

    # ---- the study ----------------------------------------------------------------------
    def on_step_end(self, iteration, trials, **info):
        if time.time() - self.last_line >= self.every_s:
            self.last_line = time.time()
            self.say(self.study_line(trials))

    def study_line(self, trials) -> str:
        counts = {"TERMINATED": 0, "RUNNING": 0, "PENDING": 0, "ERROR": 0, "PAUSED": 0}
        for t in trials:
            counts[t.status] = counts.get(t.status, 0) + 1
        expected = self.meta.get("expected_trials") or len(trials)
        not_created = max(expected - len(trials), 0)
        per_trial = _epochs_of(trials)
        total = per_trial * expected
        done = sum(self.epochs_done.get(t.trial_id, _last_epoch(t)) for t in trials)
        if self.epochs_at_start is None:
            self.epochs_at_start = done
        elapsed = time.time() - self.start
        rate = (done - self.epochs_at_start) / elapsed if elapsed > 0 else 0.0
        left = (total - done) / rate if rate > 0 else math.nan
        end = (time.strftime("%H:%M", time.localtime(time.time() + left))
               if math.isfinite(left) else "?")
        return (f"study {self.meta.get('name')}: {counts['TERMINATED']} done · "
                f"{counts['RUNNING']} running · {counts['PENDING'] + counts['PAUSED'] + not_created}"
                f" pending · {counts['ERROR']} failed · epochs {done}/{total} · "
                f"{_fmt_minutes(elapsed)} elapsed · projected end {end} "
                f"(in {_fmt_minutes(left)})")

    def on_experiment_end(self, trials, **info):
        self.say(self.study_line(trials))
        unfinished = [t for t in trials if t.status not in ("TERMINATED", "ERROR")]
        expected = self.meta.get("expected_trials") or len(trials)
        if unfinished or len(trials) < expected:
            self.say(f"interrupted: {len(unfinished) + max(expected - len(trials), 0)} trial(s)"
                     f" unfinished; continue with:\n  {resume_command(self.meta, self.path)}")


def _error_line(trial) -> str:
    """The last line of the trial's error (the exception), not the whole traceback."""
    path = getattr(trial, "error_file", None)
    text = ""
    try:
        if path and os.path.exists(path):
            text = open(path, encoding="utf-8", errors="replace").read()
    except OSError:
        pass
    text = text or str(getattr(trial, "error_msg", "") or "")
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "see the trial's error.txt"


def _epochs_of(trials) -> int:
    for t in trials:
        e = flatten_trial(t.config or {}).get("epochs")
        if isinstance(e, int):
            return e
    return 0


def _last_epoch(trial) -> int:
    return int((trial.last_result or {}).get("epoch") or 0)
