"""What a running study prints: one line per trial evaluation, in the method's own words.

    ELM + DRW (λ=0.5) CIFAR-10 LT ρ=100 seed 1  ep 120/200  top-1 71.24 (best 71.90 @115)
        many 88.1 med 70.2 few 52.3  2.9 s/ep  eta 4 min

plus a study line every ~30 s (done / running / pending / failed, epochs, projected end), the
start, end, retry and failure of every trial, and on Ctrl-C the exact ``elm-study resume``
command. Ray Tune's own status tables, config dumps and per-checkpoint INFO lines are turned
off (``--verbose`` keeps them); warnings and errors from Ray still print.

The CLI calls :func:`prepare_console` with the run's ConsoleOptions before Ray starts; the
launcher then calls :func:`watch_tuner` (or :func:`watch_restored`) while it builds the Tuner.
The lines' wording is :mod:`study.console`; the callback printing them is
:mod:`study.progress_callback`.
"""
from __future__ import annotations

import json
import logging
import os

from study.console import resume_command
from study.options import ConsoleOptions
from trainables.store import StudyRecord

_DROP = ("Resume experiment with:", "Trials did not complete", "Checkpoint successfully created")


def prepare_console(console: ConsoleOptions) -> None:
    """Before Ray starts (a real run or resume): Tune's console mode and the Ray job's name."""
    if not console.verbose:
        # Tune's new console output prints its config box, paths and per-error blocks even
        # at verbose=0; the classic reporter at verbose=0 prints nothing (we print our lines)
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if console.job_name:
        name_ray_job(console.job_name)


def job_name_of(study: str | None) -> str | None:
    """A study's name as the Jobs page shows it: the folder or file name, without .yaml."""
    if not study:
        return None
    base = os.path.basename(str(study).rstrip("/"))
    return base[:-5] if base.endswith(".yaml") else base


def name_ray_job(name: str) -> None:
    """The driver's job metadata ``job_name`` is what the Jobs page shows (else "-").
    ``ray.init`` merges the job config injected through this variable (that is how ``ray job
    submit`` passes its own); a submitted job keeps the name it was given."""
    from trainables.ray_layer.private import JOB_CONFIG_ENV_VAR
    if JOB_CONFIG_ENV_VAR not in os.environ:
        os.environ[JOB_CONFIG_ENV_VAR] = json.dumps(
            {"metadata": {"job_name": f"elm-study {name}"}})


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


def quiet_ray_logging(console: ConsoleOptions) -> None:
    """Called after ``ray.init`` (which sets the 'ray' logger to INFO): keep warnings+."""
    if console.verbose:
        return
    logging.getLogger("ray").setLevel(logging.WARNING)
    for name in ("ray.tune", "ray.tune.tune", "ray.tune.analysis.experiment_analysis",
                 "ray.tune.execution.tune_controller", "ray.train"):
        logging.getLogger(name).addFilter(_DropChatter())
    for h in logging.getLogger("ray").handlers:
        h.addFilter(_DropChatter())


def watch_tuner(tune_config, run_config, study: StudyRecord, path: str,
                console: ConsoleOptions, run_trials: int | None = None) -> None:
    """Add the progress printer and the ``--log`` callbacks; silence Tune's tables.
    ``run_trials``: the trials of this run (an extension launches only part of the study)."""
    from study.loggers import logger_callbacks
    from study.progress_callback import StudyProgress
    quiet_ray_logging(console)
    callbacks = list(run_config.callbacks or [])
    callbacks.append(StudyProgress(study, path, run_trials=run_trials))
    callbacks.extend(logger_callbacks(study, path, list(console.log)))
    run_config.callbacks = callbacks
    run_config.verbose = 2 if console.verbose else 0
    print_banner(study, path)


def watch_restored(tuner, study: StudyRecord, path: str, console: ConsoleOptions,
                   run_trials: int | None = None) -> None:
    """``Tuner.restore`` brings back the callbacks pickled at launch: use this command's
    (its --verbose / --log) instead. Ray 2.60 has no public setter: the shim reaches them."""
    from trainables.ray_layer.private import restored_run_and_tune_config
    configs = restored_run_and_tune_config(tuner)
    if configs is None:   # another Ray version: keep the restored ones
        return
    run_config, tune_config = configs
    run_config.callbacks = [c for c in run_config.callbacks or []
                            if not type(c).__module__.startswith("study.")]
    watch_tuner(tune_config, run_config, study, path, console, run_trials)


def print_banner(study: StudyRecord, path: str) -> None:
    """Where to look while it runs, and how to continue if this driver goes away."""
    from trainables.ray_layer.private import dashboard_url, metrics_export_port
    port = metrics_export_port()
    if port:   # None when joined to a cluster: its nodes' agents export them
        print(f"trial metrics (Prometheus): http://127.0.0.1:{port}/metrics", flush=True)
    if dashboard_url():   # init_ray printed its URL
        print("the dashboard asks for a token: `ray get-auth-token` prints it (it is also in "
              "~/.ray/auth_token)", flush=True)
    print(f"tensorboard --logdir {path}", flush=True)
    print(f"if this driver stops: {resume_command(study, path)}", flush=True)
