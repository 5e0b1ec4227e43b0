"""Ray-private names live in ``trainables/ray_layer/private.py`` alone, each under contract
(issue 38).

(a) One contract test per name in ``private.RAY_PRIVATE_NAMES``, against the installed (pinned)
Ray: a Ray upgrade that moves a name fails the test named after it, not a study. Where the
name can be had without starting Ray it is read or built for real; an attribute Ray's own code
sets on an instance (a Tuner's ``_local_tuner``) is found assigned in that class's source.
(b) The project's source (trainables, search_spaces, study, analysis, bench; not tests/, which
may look at Ray's internals on purpose) is scanned (tests/raypriv.py says what the scan sees
and what it cannot): every Ray-private name it finds is in private.py, and each one there is
among RAY_PRIVATE_NAMES, so it has its contract.
"""
from __future__ import annotations

import ast
import inspect
import re
import textwrap
from pathlib import Path

import pytest
from raypriv import private_reads

from trainables.ray_layer import private

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("trainables", "search_spaces", "study", "analysis", "bench")
PRIVATE_PY = REPO / "trainables" / "ray_layer" / "private.py"


def _assigned_on_self(cls, attr: str) -> bool:
    """Does ``cls``'s own source assign ``self.<attr>`` (an instance attribute Ray sets)?"""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    return any(isinstance(t, ast.Attribute) and t.attr == attr and isinstance(t.value, ast.Name)
               and t.value.id == "self"
               for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AnnAssign))
               for t in (n.targets if isinstance(n, ast.Assign) else [n.target]))


def _log_prefix_actor_name():
    from ray._private import ray_constants
    assert ray_constants.LOG_PREFIX_ACTOR_NAME == private.ACTOR_NAME_MARKER


def _job_config_env_var():
    from ray._private.runtime_env import constants
    assert constants.RAY_JOB_CONFIG_JSON_ENV_VAR == private.JOB_CONFIG_ENV_VAR


def _cluster_env_var():
    from ray._private import ray_constants
    assert ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR == private._CLUSTER_ENV_VAR


def _enable_ray_cluster():
    from ray._private import ray_constants
    assert isinstance(ray_constants.ENABLE_RAY_CLUSTER, bool)


def _node_ip_address():
    import ray
    # ray.init takes it from **kwargs (no parameter of that name): its source must pop it
    tree = ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(ray.init))))
    assert any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
               and n.func.attr == "pop" and n.args and isinstance(n.args[0], ast.Constant)
               and n.args[0].value == "_node_ip_address" for n in ast.walk(tree))


def _get_storage(tmp_path):
    from ray.train._internal.session import get_storage
    from ray.train._internal.storage import StorageContext
    assert callable(get_storage)
    ctx = StorageContext(storage_path=str(tmp_path), experiment_dir_name="e",
                         trial_dir_name="t")          # what get_storage() returns in a trial
    assert ctx.storage_filesystem is not None and ctx.trial_fs_path.endswith("e/t")


def _get_train_context():
    from ray.train.v2._internal.execution.context import TrainContext, get_train_context
    assert callable(get_train_context) and callable(TrainContext.get_result_queue)


def _global_worker():
    from ray._private import worker
    from ray._private.node import Node
    # ray.init's connect() sets the worker's node; Worker.__init__ starts it at None
    assert isinstance(worker.global_worker, worker.Worker)
    assert _assigned_on_self(worker.Worker, "node")
    assert isinstance(Node.metrics_export_port, property)
    assert isinstance(Node.address_info, property)


def _local_tuner():
    from ray.tune import Tuner
    assert _assigned_on_self(Tuner, "_local_tuner")


def _run_config():
    from ray.tune.impl.tuner_internal import TunerInternal
    assert _assigned_on_self(TunerInternal, "_run_config")


def _tune_config():
    from ray.tune.impl.tuner_internal import TunerInternal
    assert _assigned_on_self(TunerInternal, "_tune_config")


def _wrap_function():
    from ray.tune import Trainable
    from ray.tune.trainable.function_trainable import wrap_function

    def train_trial(config):
        return None

    assert issubclass(wrap_function(train_trial), Trainable)


def _completed_trials():
    from ray.tune.search.optuna import OptunaSearch
    assert isinstance(OptunaSearch()._completed_trials, set)   # mark_... calls .add on it


def _connect_and_get_accessor():
    from ray._private.state import GlobalState, state
    from ray._raylet import GlobalStateAccessor
    assert isinstance(state, GlobalState) and callable(GlobalState._connect_and_get_accessor)
    assert callable(GlobalStateAccessor.get_placement_group_table)


def _placement_group_table_data():
    from ray.core.generated import gcs_pb2
    data = gcs_pb2.PlacementGroupTableData
    fields = set(data.DESCRIPTOR.fields_by_name)
    assert {"placement_group_id", "state", "is_detached", "creator_actor_id",
            "creator_actor_dead", "creator_job_id"} <= fields, fields
    assert data.REMOVED == data.DESCRIPTOR.enum_values_by_name["REMOVED"].number


def _worker_group_startup_timeout():
    from ray.train import ControllerError
    from ray.train.v2._internal.exceptions import WorkerGroupStartupTimeoutError
    error = ControllerError(WorkerGroupStartupTimeoutError(num_workers=2))
    assert private.is_worker_group_start_timeout(error)
    assert not private.is_worker_group_start_timeout(ControllerError(RuntimeError("other")))


CONTRACTS = {
    "ray._private.ray_constants.LOG_PREFIX_ACTOR_NAME": _log_prefix_actor_name,
    "ray._private.runtime_env.constants.RAY_JOB_CONFIG_JSON_ENV_VAR": _job_config_env_var,
    "ray._private.ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR": _cluster_env_var,
    "ray._private.ray_constants.ENABLE_RAY_CLUSTER": _enable_ray_cluster,
    "ray.init(_node_ip_address)": _node_ip_address,
    "ray.train._internal.session.get_storage": _get_storage,
    "ray.train.v2._internal.execution.context.get_train_context": _get_train_context,
    "ray._private.worker.global_worker": _global_worker,
    "ray.tune.Tuner._local_tuner": _local_tuner,
    "ray.tune.impl.tuner_internal.TunerInternal._run_config": _run_config,
    "ray.tune.impl.tuner_internal.TunerInternal._tune_config": _tune_config,
    "ray.tune.trainable.function_trainable.wrap_function": _wrap_function,
    "ray.tune.search.optuna.OptunaSearch._completed_trials": _completed_trials,
    "ray._private.state.state._connect_and_get_accessor": _connect_and_get_accessor,
    "ray.core.generated.gcs_pb2.PlacementGroupTableData": _placement_group_table_data,
    "ray.train.v2._internal.exceptions.WorkerGroupStartupTimeoutError":
        _worker_group_startup_timeout,
}


@pytest.mark.parametrize("name", private.RAY_PRIVATE_NAMES)
def test_ray_still_has(name, tmp_path):
    assert name in CONTRACTS, f"{name}: listed in private.py without a contract here"
    check = CONTRACTS[name]
    check(tmp_path) if "tmp_path" in inspect.signature(check).parameters else check()


def test_every_contract_is_of_a_listed_name():
    assert set(CONTRACTS) == set(private.RAY_PRIVATE_NAMES)


def _scan() -> dict[str, list[str]]:
    """module path -> the Ray-private names the scan sees there ('line: what')."""
    out = {}
    for pkg in SCANNED:
        for path in sorted((REPO / pkg).rglob("*.py")):
            found = private_reads(path)
            if found:
                out[str(path.relative_to(REPO))] = [f"{line}: {what}" for line, what in found]
    return out


def test_ray_private_names_are_read_in_private_py_alone():
    found = _scan()
    outside = {p: names for p, names in found.items() if REPO / p != PRIVATE_PY}
    assert not outside, "Ray-private names outside trainables/ray_layer/private.py " \
        "(add an accessor there, with a RAY_PRIVATE_NAMES line and a contract):\n" + "\n".join(
            f"  {p}:{n}" for p, names in outside.items() for n in names)
    # the scan sees the shim's own reads (a blind scan would pass the assertion above)
    assert any("_local_tuner" in n for n in found[str(PRIVATE_PY.relative_to(REPO))])


def test_each_private_name_read_in_private_py_is_listed():
    listed = {part for name in private.RAY_PRIVATE_NAMES for part in re.findall(r"\w+", name)}
    unlisted = [n for n in _scan()[str(PRIVATE_PY.relative_to(REPO))]
                for word in re.findall(r"\b_[A-Za-z]\w*", n.split(": ", 1)[1])
                if not word.startswith("__") and word not in listed]
    assert not unlisted, f"read in private.py but not in RAY_PRIVATE_NAMES: {unlisted}"


def test_the_scan_sees_each_kind_of_read(tmp_path):
    """Each pattern the scan claims to see, planted in a throwaway module."""
    planted = tmp_path / "planted.py"
    planted.write_text(textwrap.dedent('''
        import ray._private.worker
        from ray.tune.logger import TBXLoggerCallback
        from trainables.ray_layer.private import wrap_function

        class Logger(TBXLoggerCallback):
            def log_trial_start(self, trial):
                return self._trial_writer, trial._status

            def _try_log_hparams(self, trial, result):
                pass

        def f(tuner, searcher):
            getattr(searcher, "_completed_trials")
            ray.init(_node_ip_address="127.0.0.1")
            base = wrap_function(f)

            class Actor(base):
                _name = "x"
            return tuner._local_tuner
    '''))
    seen = {what for _, what in private_reads(planted)}
    assert seen == {"import ray._private.worker", "self._trial_writer", "trial._status",
                    "Logger._try_log_hparams (a method)", "getattr(..., '_completed_trials')",
                    "ray.init(_node_ip_address=...)", "Actor._name (a class attribute)",
                    "tuner._local_tuner"}, seen
    # a module that touches no Ray: its own private names are its business
    (tmp_path / "pure.py").write_text("class A:\n    def f(self, b):\n        return b._x\n")
    assert private_reads(tmp_path / "pure.py") == []
