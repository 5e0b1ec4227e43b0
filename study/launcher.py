"""Ray side of a study: start or join Ray, build the Tuner, run, resume, summarise."""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from study.store import STUDY_FILE, StudyError, is_remote, read_meta, write_meta
from trainables.results import FINISHED

LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEFAULT_GPU_FRACTION = 0.25   # four small ResNet32 trials per GPU (see bench/packing.py)


# =========================================================================================
# Ray
# =========================================================================================
def init_ray(address: str, dashboard: bool, dashboard_host: str) -> dict:
    """Start a local Ray (dashboard only on request, on loopback by default) or join one.

    Token authentication (Ray 2.60's default) is left as Ray sets it: to join a cluster that
    uses it, export RAY_AUTH_MODE=token and have the cluster's token in ~/.ray/auth_token.
    """
    import os

    import ray
    import ray._private.ray_constants as ray_constants
    if dashboard and dashboard_host not in LOOPBACK:
        print(f"WARNING: the Ray dashboard will listen on {dashboard_host}: anyone who reaches "
              "that address can submit jobs unless token auth is on (CVE-2023-48022).",
              file=sys.stderr)
    if address == "local":
        # A one-machine study needs nothing reachable from the network. Ray 2.60 turns a
        # node IP of 127.0.0.1 into the host's address and binds GCS, raylet, agents and the
        # metrics endpoint off loopback, unless its "no cluster" mode (meant for macOS/Windows)
        # is on: then every listener is on 127.0.0.1 (measured with ss -ltnp; docs/security.md).
        # Child processes read the variable when they start; this process may have imported
        # ray before now, so its copy of the flag is set too.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        ray_constants.ENABLE_RAY_CLUSTER = False
        ctx = ray.init(address="local", _node_ip_address="127.0.0.1",
                       include_dashboard=dashboard, dashboard_host=dashboard_host,
                       log_to_driver=True)
        if dashboard and ctx.dashboard_url:
            print(f"Ray dashboard: http://{ctx.dashboard_url}", flush=True)
    else:
        ray.init(address=address)
    return ray.cluster_resources()


def trial_resources(meta: dict, cluster: dict) -> dict:
    """CPU/GPU per trial; refuses requests the cluster cannot ever satisfy."""
    gpus_total = cluster.get("GPU", 0)
    gpu = meta.get("gpus_per_trial")
    if gpu is None:
        gpu = DEFAULT_GPU_FRACTION if gpus_total else 0
    if gpu > gpus_total:
        raise StudyError(f"--gpus-per-trial {gpu} but the cluster has {gpus_total:g} GPU(s)")
    workers = meta.get("workers_per_trial", 1)
    if workers > 1:      # one whole GPU per worker where the cluster has GPUs
        if gpus_total and gpus_total < workers:
            raise StudyError(f"--workers-per-trial {workers} but the cluster has "
                             f"{gpus_total:g} GPU(s)")
        gpu = 1 if gpus_total else 0
    cpu = meta.get("cpus_per_trial", 1.0)
    if cpu > cluster.get("CPU", 0):
        raise StudyError(f"--cpus-per-trial {cpu} but the cluster has {cluster.get('CPU', 0):g}"
                         " CPU(s)")
    return {"cpu": cpu, "gpu": gpu}


def _trainable(resources: dict, workers: int = 1):
    """(trainable, concurrency cap or None): one process per trial, or for workers > 1 a Ray
    Train driver whose N workers Ray places together (trainables/distributed.py)."""
    from study.progress import trainable
    from trainables.trainable import train_trial
    if workers == 1:
        return trainable(train_trial, resources), None   # the trial actor, named after its trial
    from trainables.distributed import trainable_for
    return trainable_for(resources, workers)


# =========================================================================================
# run / resume
# =========================================================================================
def new_study_dir(path: str, meta: dict, *, force: bool) -> None:
    """Refuse to clobber an existing study (unless --force); then write study.json."""
    if is_remote(path):
        return   # remote storage: Ray Tune creates it; study.json stays local-only for now
    p = Path(path)
    if (p / STUDY_FILE).exists() or (p.exists() and any(p.iterdir())):
        old = read_meta(p) if (p / STUDY_FILE).exists() else {}
        if not force:
            what = f"of study '{old.get('space')}'" if old else "(not a study)"
            raise StudyError(f"study folder {p} already exists {what}; finish it with "
                             f"'elm-study resume {p}', add the trials it lacks with "
                             f"'--into {p.name}', or pass --force to replace it")
        shutil.rmtree(p)


def build_tuner(space, path: str, meta: dict, resources: dict, run: int = 1):
    """Run 1 of a study is the Tune experiment ``<storage>/<name>``; run k is ``<name>/run-k``
    (an extension), so each run resumes on its own and the study folder holds them all."""
    from ray import tune

    from study.progress import watch_tuner
    searcher = space.make_searcher(Path(path)) if space.make_searcher else None
    scheduler = space.make_scheduler() if space.make_scheduler else None
    # Tune insists every report carries TuneConfig's metric; grids evaluate every eval_every
    # epochs, so only searches/schedulers (which need it) name one, and those that built their
    # searcher with it do not pass it twice.
    needs_metric = (searcher is not None and not space.searcher_has_metric) or (
        scheduler is not None and searcher is None)
    trainable, cap = _trainable(resources, meta.get("workers_per_trial", 1))
    limits = [v for v in (meta.get("max_concurrent"), cap) if v]
    tune_config = tune.TuneConfig(
        metric=space.metric if needs_metric else None,
        mode=space.mode if needs_metric else None,
        search_alg=searcher, scheduler=scheduler, num_samples=space.num_samples,
        max_concurrent_trials=min(limits) if limits else None,
        reuse_actors=meta.get("workers_per_trial", 1) == 1,
        trial_dirname_creator=trial_dirname)
    run_config = tune.RunConfig(
        name=meta["name"] if run == 1 else f"run-{run}",
        storage_path=meta["storage"] if run == 1 else str(path),
        failure_config=tune.FailureConfig(max_failures=meta.get("max_failures", 3)),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2), verbose=1)
    # progress counts this run's trials (an extension launches only part of the study)
    watch_tuner(tune_config, run_config, {**meta, "run_trials": space.expected_trials}, path)
    return tune.Tuner(trainable, param_space=space.param_space,
                      tune_config=tune_config, run_config=run_config)


def trial_dirname(trial) -> str:
    """'ELM+DRW_lam0.5_seed1_261bc_00003': a trial folder named after its method and seed
    (Tune's default spells out the nested config and a timestamp); the trial id keeps it
    unique. TensorBoard shows it as the run's name."""
    from study.loggers import run_name
    return f"{run_name(trial.config)}_{trial.trial_id}"


def fit_study(space, path: str, meta: dict, *, address: str, dashboard: bool,
              dashboard_host: str, run: int = 1) -> int:
    """Launch ``space`` as run ``run`` of the study at ``path`` (meta["runs"] describes it)."""
    import ray
    cluster = init_ray(address, dashboard, dashboard_host)
    try:
        resources = trial_resources(meta, cluster)
        meta = {**meta, "resources": resources, "started_at": time.time()}
        if meta.get("runs"):
            meta["runs"][-1]["resources"] = resources
        if not is_remote(path):
            from study.plan import save_spec
            write_meta(Path(path), meta)
            save_spec(Path(path), space, run)
        where = path if run == 1 else f"{path}/run-{run}"
        print(f"study {meta['name']}: {space.expected_trials} trials of '{space.name}', "
              f"{resources} each -> {where}", flush=True)
        build_tuner(space, path, meta, resources, run).fit()
    finally:
        ray.shutdown()
    return report(path, meta)


def runs_to_resume(path: Path, meta: dict) -> list[tuple[dict, Path]]:
    """(run entry, experiment folder) of every run that has an unfinished trial or never
    recorded its trials; refuses runs that Tune cannot restore."""
    from ray import tune

    from trainables.results import study_trials
    runs = meta.get("runs") or [{"run": 1, "dir": ".", "resources": meta.get("resources")}]
    trials = study_trials(path)
    todo = []
    for r in runs:
        mine = [t for t in trials if t["run"] == r["run"]]
        if mine and all(t["status"] in FINISHED for t in mine) and len(mine) >= r.get(
                "launched", 0):
            continue
        exp = path if r["run"] == 1 else path / f"run-{r['run']}"
        if not tune.Tuner.can_restore(str(exp)):
            raise StudyError(f"{exp} has no Ray Tune experiment state to resume from (did run "
                             f"{r['run']} start?); run the study again with --force")
        todo.append((r, exp))
    return todo


def resume_study(path: Path, meta: dict, *, address: str, dashboard: bool,
                 dashboard_host: str) -> int:
    """Tuner.restore of every run with unfinished trials: finished trials stay finished,
    unfinished and errored ones continue from their last checkpoint."""
    import ray
    from ray import tune

    from study.progress import watch_restored
    todo = runs_to_resume(Path(path), meta)
    if not todo:
        print(f"study {meta['name']}: every trial of every run is finished; nothing to resume")
        return report(path, meta)
    init_ray(address, dashboard, dashboard_host)
    try:
        for run, exp in todo:
            resources = run.get("resources") or meta["resources"]
            tuner = tune.Tuner.restore(str(exp), trainable=_trainable(
                                           resources, meta.get("workers_per_trial", 1))[0],
                                       resume_errored=True)
            # progress lines, TensorBoard, --log; counting this run's trials
            watch_restored(tuner, {**meta, "run_trials": run.get("launched")}, str(exp))
            print(f"resuming study {meta['name']} run {run['run']} at {exp}", flush=True)
            tuner.fit()
    finally:
        ray.shutdown()
    return report(path, meta)


# =========================================================================================
# summaries (read from storage; no Ray needed)
# =========================================================================================


def status_counts(path) -> tuple:
    from analysis.collect import load_study
    df = load_study(path)
    counts = df["status"].value_counts().to_dict() if len(df) else {}
    return df, counts


def print_status(path, meta: dict) -> None:
    df, counts = status_counts(path)
    expected = meta.get("expected_trials")
    pending = max((expected or 0) - len(df), 0)
    parts = [f"{k} {v}" for k, v in sorted(counts.items())] + ([f"not started {pending}"]
                                                               if pending else [])
    print(f"study {meta.get('name')} ({meta.get('space')}): {len(df)}/{expected} trials seen; "
          + ", ".join(parts))
    for r in meta.get("runs") or []:
        mine = df[df["run"] == r["run"]] if len(df) else df
        extra = "".join(f", {r[k]} {w}" for k, w in (("kept", "kept"), (
            "unfinished_elsewhere", "left to earlier runs")) if r.get(k))
        print(f"  run {r['run']} ({r.get('started_at', '?')}, {Path(r.get('source') or '?').name}"
              f"): added {r.get('launched')}{extra}; finished "
              f"{int(mine['status'].isin(FINISHED).sum()) if len(mine) else 0}")
    if len(df):
        epochs = df.get("epochs")
        if epochs is not None and expected:
            done = df["epochs_done"].fillna(0).sum()
            total = float(epochs.fillna(0).max()) * expected
            print(f"progress: {done:.0f}/{total:.0f} epochs ({100 * done / max(total, 1):.1f}%)")
        best = df.dropna(subset=["best_top1_test_selected"])
        if len(best):
            row = best.loc[best["best_top1_test_selected"].idxmax()]
            print(f"best so far: {row['best_top1_test_selected']:.2f} top-1 (test-selected) — "
                  f"{row['method']} seed {row.get('seed')} [{row['trial_id']}]")


def report(path, meta: dict) -> int:
    """Print the per-method mean ± std table; exit 1 if any trial errored or is unfinished."""
    from analysis.collect import summary_table
    df, counts = status_counts(path)
    print()
    print_status(path, meta)
    table = summary_table(df)
    if len(table):
        print("\nfinal-epoch test top-1 (mean ± std over seeds, n):")
        for _, r in table.iterrows():
            std = "" if r["n"] < 2 else f" ± {r['std']:.2f}"
            print(f"  {r['method']:<22s} {r['dataset']}-{r['imb_type']} r={r['ratio']:g}  "
                  f"{r['mean']:6.2f}{std}  (n={r['n']})")
    print(f"\nresults: {path}")
    bad = counts.get("errored", 0) + counts.get("running", 0)
    return 1 if bad else 0
