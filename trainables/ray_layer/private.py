"""The one shim for every Ray-private API the project touches (read from Ray 2.60.0).

Ray 2.60 has no public API for these; each is wrapped here, once, so a Ray upgrade changes
this module only. Every function degrades instead of failing (None, or nothing done) when the
private name has moved, or when it runs outside the Ray context it needs. Ray is imported
inside the functions: the constants are read by CLI commands that must stay fast, and the pure
core (trainables.faults) may call in without Ray installed.
"""
from __future__ import annotations

import os

RAY_VERSION_READ = "2.60.0"   # the Ray whose sources each private access below was read from

# Every Ray name this module relies on that Ray does not document: each has one contract test
# against the installed Ray (tests/test_ray_private.py, named by this string), so an upgrade
# that moves one fails that test rather than a study. The same file's scan fails when a
# Ray-private name is read anywhere but here, or here without a line below.
RAY_PRIVATE_NAMES = (
    "ray._private.ray_constants.LOG_PREFIX_ACTOR_NAME",           # ACTOR_NAME_MARKER
    "ray._private.runtime_env.constants.RAY_JOB_CONFIG_JSON_ENV_VAR",   # JOB_CONFIG_ENV_VAR
    "ray._private.ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR",    # keep_local_ray_on_loopback
    "ray._private.ray_constants.ENABLE_RAY_CLUSTER",             # keep_local_ray_on_loopback
    "ray.init(_node_ip_address)",                                # loopback_init_kwargs
    "ray.train._internal.session.get_storage",                   # trial_storage
    "ray.train.v2._internal.execution.context.get_train_context",   # train_result_queue
    "ray._private.worker.global_worker",              # metrics_export_port, dashboard_url
    "ray.tune.Tuner._local_tuner",                               # restored_run_and_tune_config
    "ray.tune.impl.tuner_internal.TunerInternal._run_config",    # restored_run_and_tune_config
    "ray.tune.impl.tuner_internal.TunerInternal._tune_config",   # restored_run_and_tune_config
    "ray.tune.trainable.function_trainable.wrap_function",       # wrap_function
    "ray.tune.search.optuna.OptunaSearch._completed_trials",     # mark_search_trial_completed
    "ray._private.state.state._connect_and_get_accessor",        # orphaned_placement_groups
    "ray.core.generated.gcs_pb2.PlacementGroupTableData",        # orphaned_placement_groups
    "ray.train.v2._internal.exceptions.WorkerGroupStartupTimeoutError",   # is_worker_group_...
)

# ray._private.ray_constants.LOG_PREFIX_ACTOR_NAME: a line "<marker><name>" on a worker's
# stdout/stderr renames the "(NAME pid=...)" prefix of its next log lines (Ray's log monitor)
ACTOR_NAME_MARKER = ":actor_name:"
# ray._private.runtime_env.constants.RAY_JOB_CONFIG_JSON_ENV_VAR: ray.init merges the job
# config (metadata such as the job name) it finds in this variable
JOB_CONFIG_ENV_VAR = "RAY_JOB_CONFIG_JSON_ENV_VAR"
# ray._private.ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR
_CLUSTER_ENV_VAR = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def trial_storage():
    """(pyarrow filesystem, trial path) of the running Tune trial's folder in the study's
    storage, or None outside Tune. Private: ray.train._internal.session.get_storage()."""
    try:
        from ray.train._internal.session import get_storage
        storage = get_storage()
        return storage.storage_filesystem, storage.trial_fs_path
    except Exception:   # not inside Tune, or Ray moved the private API
        return None


def train_result_queue():
    """The running Ray Train (V2) worker's queue of reports not yet taken by the controller,
    or None outside a Train worker. Private: ray.train.v2._internal.execution.context."""
    try:
        from ray.train.v2._internal.execution.context import get_train_context
        return get_train_context().get_result_queue()
    except Exception:   # not in a Ray Train worker, no Ray, or a Ray without this API
        return None


def keep_local_ray_on_loopback() -> None:
    """Make the local Ray about to start bind every listener to 127.0.0.1.

    Ray 2.60 turns a node IP of 127.0.0.1 into the host's address and binds GCS, raylet,
    agents and the metrics endpoint off loopback, unless its "no cluster" mode (meant for
    macOS/Windows) is on (measured with ss -ltnp; docs/security.md). Child processes read the
    variable when they start; this process may have imported ray already, so its copy of the
    flag (private: ray._private.ray_constants.ENABLE_RAY_CLUSTER) is set too."""
    os.environ[_CLUSTER_ENV_VAR] = "0"
    try:
        import ray._private.ray_constants as ray_constants
        ray_constants.ENABLE_RAY_CLUSTER = False
    except (ImportError, AttributeError):   # another Ray: the variable is all there is
        pass


def loopback_init_kwargs() -> dict:
    """``ray.init`` keywords that put a local node on 127.0.0.1 (with
    :func:`keep_local_ray_on_loopback`). Private: ray.init's ``_node_ip_address``."""
    return {"_node_ip_address": "127.0.0.1"}


def _node():
    import ray
    return ray._private.worker.global_worker.node


def metrics_export_port() -> int | None:
    """This driver's local node's metrics export port (Prometheus ``/metrics``), or None when
    it has joined a cluster (no local node) or Ray moved it. Private: global_worker.node."""
    try:
        return _node().metrics_export_port
    except Exception:
        return None


def dashboard_url() -> str | None:
    """The dashboard's host:port when this driver started it, else None. Private:
    ray._private.worker.global_worker.node.address_info["webui_url"]."""
    try:
        return _node().address_info.get("webui_url") or None
    except Exception:
        return None


def restored_run_and_tune_config(tuner):
    """(RunConfig, TuneConfig) of a ``Tuner.restore``-d tuner, to replace the callbacks
    pickled at launch, or None on a Ray without them. Private: tuner._local_tuner."""
    try:
        internal = tuner._local_tuner
        return internal._run_config, internal._tune_config
    except AttributeError:
        return None


def wrap_function(fn):
    """Tune's class for a function trainable (to subclass it: the trial actor). Private:
    ray.tune.trainable.function_trainable.wrap_function."""
    from ray.tune.trainable.function_trainable import wrap_function as wrap
    return wrap(fn)


def mark_search_trial_completed(searcher, trial_id: str) -> None:
    """Tell Ray's OptunaSearch that a trial is complete, so that it skips the trial's later
    results (as it does for trials it completed itself). Private: ``_completed_trials``."""
    completed = getattr(searcher, "_completed_trials", None)
    if completed is not None:
        completed.add(trial_id)


def node_id() -> str:
    """The Ray node this process runs on ("" outside Ray)."""
    try:
        import ray
        return ray.get_runtime_context().get_node_id()
    except Exception:   # not inside Ray
        return ""


def orphaned_placement_groups() -> list:
    """Placement groups of this Ray job whose creating actor has died, not yet removed.

    A Ray Train (V2) worker group's placement group is created by the Train controller actor
    but its lifetime is the job's, not the controller's: when Tune stops a data-parallel trial
    (a scheduler's STOP, a ``done`` result, an error) it kills the trial's actor, the
    controller dies with it before it shuts its worker group down, and the group's resources
    stay reserved until the study's driver exits (ray issue 54305). Ray's own backstop (the
    PlacementGroupCleaner actor) asks the State API, which needs the dashboard, whether the
    controller lives; a study without the dashboard never gets an answer. Here the GCS says it:
    its PlacementGroupTableData carries ``creator_actor_id`` and ``creator_actor_dead``.
    Placement groups the job's driver created (Tune's, per trial: no creator actor) and
    detached ones are left alone. Private: ray._private.state.state._connect_and_get_accessor
    and ray.core.generated.gcs_pb2 (the public placement_group_table() drops the creator).
    [] when Ray is not initialised or moved these."""
    try:
        import ray
        from ray._private.state import state
        from ray.core.generated import gcs_pb2
        from ray.util.placement_group import PlacementGroup
        if not ray.is_initialized():
            return []
        job = ray.get_runtime_context().get_job_id()
        removed = gcs_pb2.PlacementGroupTableData.REMOVED
        out = []
        for raw in state._connect_and_get_accessor().get_placement_group_table():
            pg = gcs_pb2.PlacementGroupTableData.FromString(raw)
            creator = bytes(pg.creator_actor_id)
            if (pg.state == removed or pg.is_detached or not pg.creator_actor_dead
                    or not creator or all(b == 0xFF for b in creator)   # the driver's
                    or pg.creator_job_id.hex() != job):
                continue
            out.append(PlacementGroup(ray.PlacementGroupID(pg.placement_group_id)))
        return out
    except Exception:
        return []


def is_worker_group_start_timeout(error: BaseException) -> bool:
    """Did Ray Train (V2) give up because its worker group never got its placement group
    (every try of RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S timed out)? Private: the
    ControllerError's ``controller_failure`` is a
    ray.train.v2._internal.exceptions.WorkerGroupStartupTimeoutError."""
    failure = getattr(error, "controller_failure", None)
    return type(failure).__name__ == "WorkerGroupStartupTimeoutError"
