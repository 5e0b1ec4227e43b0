"""Ray side of a study: carry out a Plan (start or join Ray, build the Tuner, run, resume).

What to launch is decided in :mod:`study.plan`; the tables printed at the end are
:mod:`study.summary`; which trainable runs a trial is ``trainables.ray_layer.dispatch``'s
choice, and every Ray-private access goes through ``trainables.ray_layer.private``.
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from study.options import ClusterOptions, ConsoleOptions, RunOptions
from study.store import StudyError, is_remote
from study.summary import report
from trainables.store import Resources, RunRecord, StudyRecord, write_study

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def execute(plan, cluster: ClusterOptions, console: ConsoleOptions) -> int:
    """Run a :class:`study.plan.Plan`; the exit code is :func:`study.summary.report`'s."""
    if plan.kind == "resume":
        return resume_study(Path(plan.path), plan.study, cluster=cluster, console=console)
    if plan.kind == "extend" and not plan.space.expected_trials:
        return 0
    if plan.kind == "new" and plan.force:
        clear_study_dir(plan.path)
    return fit_study(plan.space, plan.path, plan.study, run=plan.run, address=cluster.address,
                     dashboard=cluster.dashboard, dashboard_host=cluster.dashboard_host,
                     console=console)


# =========================================================================================
# Ray
# =========================================================================================
def init_ray(address: str, dashboard: bool, dashboard_host: str) -> dict:
    """Start a local Ray (dashboard only on request, on loopback by default) or join one.

    Token authentication (Ray 2.60's default) is left as Ray sets it: to join a cluster that
    uses it, export RAY_AUTH_MODE=token and have the cluster's token in ~/.ray/auth_token.
    """
    import ray

    from trainables.ray_layer.private import keep_local_ray_on_loopback, loopback_init_kwargs
    if dashboard and dashboard_host not in LOOPBACK:
        print(f"WARNING: the Ray dashboard will listen on {dashboard_host}: anyone who reaches "
              "that address can submit jobs unless token auth is on (CVE-2023-48022).",
              file=sys.stderr)
    if address == "local":
        # A one-machine study needs nothing reachable from the network: every listener on
        # 127.0.0.1 (measured with ss -ltnp; docs/security.md; how is the shim's business)
        keep_local_ray_on_loopback()
        ctx = start_local_ray(include_dashboard=dashboard, dashboard_host=dashboard_host,
                              log_to_driver=True, **loopback_init_kwargs())
        if dashboard and ctx.dashboard_url:
            print(f"Ray dashboard: http://{ctx.dashboard_url}", flush=True)
    else:
        ray.init(address=address)
    return ray.cluster_resources()


def start_local_ray(**kwargs):
    """``ray.init(address="local")``, tried a second time when the new node misses Ray's fixed
    30 s window to register with its GCS ("timed out during startup"): on a loaded machine (a
    study resumed while a killed driver's Ray is still exiting, two studies starting together
    on 2 cores) the first try can miss it and a second one starts cleanly. The half-started
    node of the first try shares its fate with this process and goes with it."""
    import ray
    try:
        return ray.init(address="local", **kwargs)
    except Exception as e:   # Ray raises a bare Exception for this one
        if "timed out during startup" not in str(e):
            raise
        print("Ray's local node did not register within Ray's 30 s (a busy machine?); "
              "starting it once more", file=sys.stderr, flush=True)
        ray.shutdown()
        return ray.init(address="local", **kwargs)


def trial_resources(options: RunOptions, cluster: dict, local: bool = True) -> Resources:
    """CPU/GPU per trial (per worker for data-parallel trials), checked against what Ray
    says the cluster has: a local study that cannot place one trial is refused, a cluster
    (which may grow) gets one warning line (study.placement)."""
    from study.placement import check_placement, trial_resources as resources_of
    warning = check_placement(options, cluster, local=local)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    return Resources.from_json(resources_of(options, cluster))


# =========================================================================================
# run / resume
# =========================================================================================
def clear_study_dir(path: str) -> None:
    """``--force``: the old study goes (the plan has checked that it was asked for)."""
    p = Path(path)
    if not is_remote(path) and p.exists():
        shutil.rmtree(p)


def build_tuner(space, path: str, study: StudyRecord, resources: Resources, run: int = 1,
                console: ConsoleOptions = ConsoleOptions()):
    """Run 1 of a study is the Tune experiment ``<storage>/<name>``; run k is ``<name>/run-k``
    (an extension), so each run resumes on its own and the study folder holds them all."""
    from ray import tune

    from study.progress import watch_tuner
    from trainables.ray_layer.dispatch import trainable_for
    options = study.options_of(run)
    searcher = space.make_searcher(Path(path)) if space.make_searcher else None
    scheduler = space.make_scheduler() if space.make_scheduler else None
    # Tune insists every report carries TuneConfig's metric; grids evaluate every eval_every
    # epochs, so only searches/schedulers (which need it) name one, and those that built their
    # searcher with it do not pass it twice.
    needs_metric = (searcher is not None and not space.searcher_has_metric) or (
        scheduler is not None and searcher is None)
    trainable, cap = trainable_for(resources.to_json(), options.workers_per_trial,
                                   quiet=not console.verbose, pack=options.pack,
                                   member_dirname=member_dirname)
    tune_config = tune.TuneConfig(
        metric=space.metric if needs_metric else None,
        mode=space.mode if needs_metric else None,
        search_alg=searcher, scheduler=scheduler, num_samples=space.num_samples,
        max_concurrent_trials=concurrency_limit(options.max_concurrent, cap),
        reuse_actors=options.workers_per_trial == 1,
        trial_dirname_creator=trial_dirname)
    run_config = tune.RunConfig(
        name=study.name if run == 1 else f"run-{run}",
        storage_path=study.storage if run == 1 else str(path),
        failure_config=tune.FailureConfig(max_failures=options.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2), verbose=1)
    # progress counts this run's trials (an extension launches only part of the study)
    watch_tuner(tune_config, run_config, study, path, console, run_trials=space.expected_trials)
    return tune.Tuner(trainable, param_space=space.param_space,
                      tune_config=tune_config, run_config=run_config)


def concurrency_limit(max_concurrent: int | None, cap: int | None) -> int | None:
    """Tune's max_concurrent_trials: the smaller of --max-concurrent and the dispatcher's
    placement cap (None: no limit). A cap of 0 (a cluster that cannot place one trial yet:
    warned about before) is one trial at a time, pending until the cluster grows; never "no
    cap" (Tune reads 0 as unlimited, which would start every driver and place no worker)."""
    limits = [max(v, 1) for v in (max_concurrent, cap) if v is not None]
    return min(limits) if limits else None


def trial_dirname(trial) -> str:
    """'ELM+DRW_lam0.5_seed1_261bc_00003': a trial folder named after its method and seed
    (Tune's default spells out the nested config and a timestamp); the trial id keeps it
    unique. TensorBoard shows it as the run's name. (Tune pickles this function into every
    study's experiment state: it stays at ``study.launcher.trial_dirname``.)"""
    from study.packs import is_pack
    if is_pack(trial.config):   # a pack's own folder: its members have trial folders
        return f"pack{len(trial.config['pack'])}_{trial.trial_id}"
    return member_dirname(trial.config, trial.trial_id)


def member_dirname(config: dict, trial_id: str) -> str:
    """A trial folder's name from its Tune-form config and its trial id (trial_dirname's
    convention; a pack's members: the id is '<pack trial id>_m<k>'). Pickled by path too."""
    from study.loggers import run_name
    return f"{run_name(config)}_{trial_id}"


def fit_study(space, path: str, study: StudyRecord, *, address: str = "local",
              dashboard: bool = False, dashboard_host: str = "127.0.0.1", run: int = 1,
              console: ConsoleOptions = ConsoleOptions()) -> int:
    """Launch ``space`` as run ``run`` of the study at ``path`` (``study.runs`` lists it, with
    the options it runs with)."""
    import ray

    from study.plan import save_spec
    ray_cluster = init_ray(address, dashboard, dashboard_host)
    try:
        options = study.options_of(run)
        resources = trial_resources(options, ray_cluster, local=address == "local")
        refuse_gpus_torch_cannot_use(resources)
        study = study.with_started(resources, time.time())
        if not is_remote(path):
            write_study(path, study)
            save_spec(Path(path), space, run)
        _say_pack(options, ray_cluster, space)
        where_to = path if run == 1 else f"{path}/run-{run}"
        print(f"study {study.name}: {space.expected_trials} trials of '{space.name}', "
              f"{resources.to_json()} each -> {where_to}", flush=True)
        build_tuner(space, path, study, resources, run, console).fit()
    finally:
        ray.shutdown()
    return report(path, study)


def refuse_gpus_torch_cannot_use(resources: Resources) -> None:
    """Trials that will hold GPUs, where Ray says this node (the driver's) has GPUs that this
    torch cannot use: refused before anything is launched (each trial would refuse too, one by
    one: trainables.devices). Another node's GPUs are its own torch's to judge."""
    import ray
    if not resources.gpu:
        return
    here = ray.get_runtime_context().get_node_id()
    gpus = next((n.get("Resources", {}).get("GPU", 0) for n in ray.nodes()
                 if n.get("NodeID") == here), 0)
    if gpus:
        from trainables.devices import FIX, cuda_unusable_reason
        reason = cuda_unusable_reason()
        if reason:
            raise StudyError(f"Ray sees {gpus:g} GPU(s) on this node and each trial asks for "
                             f"{resources.gpu:g}, but {reason}. Fix: {FIX}")


def _say_pack(options: RunOptions, cluster: dict, space) -> None:
    """A packed run says how many Tune trials it is, and on a cluster without GPUs that
    packing does not speed it up (docs/packing.md: a CPU's convolutions fill its cores)."""
    if options.pack <= 1:
        return
    packs = len(space.param_space.get("pack", {}).get("grid_search", []))
    print(f"--pack {options.pack}: {space.expected_trials} trials as {packs} "
          f"pack{'s' if packs != 1 else ''} (one Tune trial each)", flush=True)
    if not cluster.get("GPU"):
        print(f"--pack {options.pack}: this cluster has no GPU; a pack trains its trials "
              "correctly but does not speed up a CPU (docs/packing.md)", flush=True)


def runs_to_resume(path: Path, study: StudyRecord) -> list[tuple[RunRecord, Path]]:
    """(run entry, experiment folder) of every run that has an unfinished trial or never
    recorded its trials; refuses runs that Tune cannot restore, and runs with an unfinished
    trial whose config no longer builds (data that cannot exist, in a folder written before
    that was checked; a field since removed): it would only fail again, attempt after
    attempt."""
    from ray import tune

    from trainables.store import study_trials
    trials = study_trials(path)
    todo, stuck = [], []
    for r in study.runs:
        mine = [t for t in trials if t.run == r.run]
        if mine and all(t.finished for t in mine) and len(mine) >= (r.launched or 0):
            continue
        exp = r.experiment(path)
        if not tune.Tuner.can_restore(str(exp)):
            raise StudyError(f"{exp} has no Ray Tune experiment state to resume from (did run "
                             f"{r.run} start?); run the study again with --force")
        stuck += [(t, e) for t in mine if not t.finished
                  for e in [_build_error(t.config)] if e]
        todo.append((r, exp))
    if stuck:
        t, e = stuck[0]
        raise StudyError(f"{path}: {len(stuck)} unfinished trial(s) cannot run as they are "
                         f"and would fail again; {t.trial_dir.name}: {e}")
    return todo


def _build_error(config: dict) -> ValueError | None:
    """Why a trial's recorded config no longer builds a TrialConfig, or None."""
    from trainables.config import TrialConfig
    try:
        TrialConfig.from_dict(config)
    except ValueError as e:
        return e
    return None


def _check_resumed(options: RunOptions, resources: Resources, have: dict, local: bool) -> None:
    """A run resumed where it cannot be placed (a cluster's study resumed on a laptop) is
    refused on a local Ray, warned about on a cluster, as a new run is."""
    import dataclasses

    from study.placement import check_placement
    as_run = dataclasses.replace(options, cpus_per_trial=resources.cpu,
                                 gpus_per_trial=resources.gpu)
    warning = check_placement(as_run, have, local=local)
    if warning:
        print(warning, file=sys.stderr, flush=True)


def resume_study(path: Path, study: StudyRecord, *, cluster: ClusterOptions = ClusterOptions(),
                 console: ConsoleOptions = ConsoleOptions()) -> int:
    """Tuner.restore of every run with unfinished trials: finished trials stay finished,
    unfinished and errored ones continue from their last checkpoint, each run with the
    trainable its own options chose."""
    import ray
    from ray import tune

    from study.progress import watch_restored
    from trainables.ray_layer.dispatch import trainable_for
    from trainables.ray_layer.tune_state import restore_damaged
    for name in restore_damaged(path):   # a driver killed while Tune wrote its state
        print(f"{name} was empty or cut (its driver was killed while Tune wrote it): "
              "restored from its last complete copy", flush=True)
    todo = runs_to_resume(Path(path), study)
    if not todo:
        print(f"study {study.name}: every trial of every run is finished; nothing to resume")
        return report(path, study)
    have = init_ray(cluster.address, cluster.dashboard, cluster.dashboard_host)
    try:
        for run, exp in todo:
            resources = run.resources or study.resources
            _check_resumed(run.options, resources, have, cluster.local)
            trainable, _ = trainable_for(resources.to_json(), run.options.workers_per_trial,
                                         quiet=not console.verbose, pack=run.options.pack,
                                         member_dirname=member_dirname)
            tuner = tune.Tuner.restore(str(exp), trainable=trainable, resume_errored=True)
            # progress lines, TensorBoard, --log; counting this run's trials
            watch_restored(tuner, study, str(exp), console, run_trials=run.launched)
            print(f"resuming study {study.name} run {run.run} at {exp}", flush=True)
            tuner.fit()
    finally:
        ray.shutdown()
    return report(path, study)

