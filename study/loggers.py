"""Where else a study's numbers go: TensorBoard always, MLflow and W&B on request.

* TensorBoard: one event file per trial in its trial folder, which is named after the method,
  seed and trial id (``ELM+DRW_lam0.5_seed1_261bc_00003``: TensorBoard's run name), scalars
  ``test/top1``, ``test/many``, ``test/medium``, ``test/few``, ``train/loss``, ``train/top1``,
  ``train/lr``... stepped by epoch, and the method's hyper-parameters in the HParams tab.
  ``tensorboard --logdir STUDY``.
* ``--log mlflow[=URI]``: Ray's MLflow callback with a file-backed store (default
  ``sqlite:///<study>/mlflow.db``, no server): one run per trial named after it, the resolved
  TrialConfig as params, per-epoch metrics (``test_top1``...) and tags study/method/seed,
  nested under one parent run for the study, which gets study.json, the resolved study files
  and, when the experiment ends, the study's report (``report/``: HTML, Markdown, LaTeX, CSV,
  figures), as ``python -m analysis report`` writes it.
* ``--log wandb``: Ray's W&B callback, only where ``wandb`` is installed.
"""
from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

from study.packs import is_pack, member_rows
from study.store import StudyError, is_remote
from trainables.methods import config_label, flatten_trial, trial_name
from trainables.store import StudyRecord

LOG_CHOICES = ("mlflow[=URI]", "wandb")
# result key -> TensorBoard tag (grouped in sections by the part before '/')
TB_TAGS = {"test_top1": "test/top1", "test_top3": "test/top3", "test_top5": "test/top5",
           "test_many": "test/many", "test_medium": "test/medium", "test_few": "test/few",
           "test_macro_f1": "test/macro_f1", "test_ece": "test/ece", "test_nll": "test/nll",
           "val_top1": "val/top1", "best_test_top1": "test/best_top1",
           "train_loss": "train/loss", "train_top1": "train/top1", "lr": "train/lr",
           "train_images_per_s": "speed/train_images_per_s", "train_time_s": "speed/epoch_s"}


def parse_log_flags(values: list[str]) -> list[tuple[str, str | None]]:
    """``['mlflow=sqlite:///x.db', 'wandb']`` ->
    ``[('mlflow', 'sqlite:///x.db'), ('wandb', None)]``; an unknown target, or one whose
    package is missing, is refused before Ray starts."""
    out = []
    for v in values:
        kind, sep, uri = v.partition("=")
        if kind not in ("mlflow", "wandb") or (kind == "wandb" and sep):
            raise StudyError(f"--log {v!r}: choose from {', '.join(LOG_CHOICES)}")
        if importlib.util.find_spec(kind) is None:
            pkg = "mlflow-skinny" if kind == "mlflow" else "wandb"
            raise StudyError(f"--log {kind} needs the '{kind}' package, which is not installed "
                             f"here (pip install {pkg})")
        out.append((kind, uri or None))
    return out


def run_name(config: dict, with_seed: bool = True) -> str:
    """'ELM+DRW_lam0.5_seed1' ('ELM+DRW_lam0.5' without the seed): a TensorBoard run / folder
    name without spaces or Greek."""
    from trainables.methods import config_label
    text = (config_label(config).replace("λ=", "lam").replace("Δ", "D").replace(" + ", "+")
            + (f"_seed{flatten_trial(config or {}).get('seed')}" if with_seed else ""))
    return re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9+._-]+", "_", text)).strip("_")


def trial_params(config: dict) -> dict:
    """The resolved TrialConfig of a Tune config (every field, defaults filled in)."""
    from trainables.config import TrialConfig
    try:
        return TrialConfig.from_dict(flatten_trial(config)).to_dict()
    except Exception:   # a config this version cannot read: log what Tune has
        return flatten_trial(config)


def _scalar(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def logger_callbacks(study: StudyRecord, path: str, logs: list) -> list:
    cbs = [tensorboard_callback()]
    for kind, uri in logs:
        cbs.append(mlflow_callback(study, path, uri) if kind == "mlflow"
                   else wandb_callback(study))
    return cbs


def tensorboard_callback():
    from ray.tune.logger import TBXLoggerCallback

    class StudyTensorBoard(TBXLoggerCallback):
        """Ray's TBX logger by type only: Tune adds its default TensorBoard logger unless one
        of this type is among the callbacks. Every hook of the base is replaced, with its own
        runs, so nothing here reads the base's private state (trainables/ray_layer/private.py
        is the one place that may): readable run names, epochs as steps, HParams per run."""

        def __init__(self):
            super().__init__()
            self.runs: dict = {}   # (Tune trial, member folder name or None) -> TensorBoardRun

        def log_trial_start(self, trial):
            if is_pack(trial.config):   # not a trial: its members get the runs
                return
            old = self.runs.pop((trial, None), None)
            if old is not None:   # a retried trial starts over: a new writer in its folder
                old.writer.close()
            trial.init_local_path()
            self.runs[(trial, None)] = TensorBoardRun(trial.local_path, trial.config)

        def log_trial_result(self, iteration, trial, result):
            if not is_pack(trial.config):
                if (trial, None) not in self.runs:
                    self.log_trial_start(trial)
                self.runs[(trial, None)].add(result)
                return
            for name, config, row in member_rows(trial.config, result):   # one run a member
                run = self.runs.get((trial, name))
                if run is None:   # beside the pack's folder, where the member's files are
                    folder = Path(trial.local_path).parent / name
                    folder.mkdir(parents=True, exist_ok=True)
                    run = self.runs[(trial, name)] = TensorBoardRun(folder, config)
                run.add(row)

        def log_trial_end(self, trial, failed=False):
            for key in [k for k in self.runs if k[0] is trial]:
                self.runs.pop(key).close()

    return StudyTensorBoard()


class TensorBoardRun:
    """One TensorBoard run (an event file in a trial's folder) and what its HParams need."""

    def __init__(self, folder, config: dict):
        from tensorboardX import SummaryWriter
        self.writer = SummaryWriter(str(folder), flush_secs=30)
        self.config, self.kept, self.method = config, {}, None

    def add(self, row: dict) -> None:
        self.kept.update(_add_scalars(self.writer, row))
        self.method = row.get("method") or self.method

    def close(self) -> None:
        if self.kept:   # the HParams tab: hyper-parameters beside the last scalars
            _write_hparams(self.writer, self.config, self.method, self.kept)
        self.writer.close()


def _add_scalars(writer, row: dict) -> dict:
    """A row's TB_TAGS scalars at its epoch; returns {tag: value} written."""
    step = int(row.get("epoch") or row.get("training_iteration") or 0)
    kept = {}
    for key, tag in TB_TAGS.items():
        if _scalar(row.get(key)):
            writer.add_scalar(tag, row[key], global_step=step)
            kept[tag] = row[key]
    writer.flush()
    return kept


def _write_hparams(writer, config: dict, method: str | None, metrics: dict) -> None:
    """The trial's hyper-parameters and final scalars (the HParams tab)."""
    p = trial_params(config)
    hp = {k: v for k, v in p.items() if isinstance(v, (str, bool, int, float))
          and k in ("loss", "drw", "lam", "seed", "dataset", "imb_type", "ratio",
                    "epochs", "lr", "batch_size", "max_m", "s", "gamma")}
    hp["method"] = method or run_name(config)
    from tensorboardX.summary import hparams
    for tag in hparams(hparam_dict=hp, metric_dict=metrics):
        writer.file_writer.add_summary(tag)


def default_mlflow_uri(path: str) -> str:
    if is_remote(path):
        raise StudyError("--log mlflow with remote --storage needs an explicit URI "
                         "(--log mlflow=sqlite:////shared/mlflow.db)")
    return f"sqlite:///{Path(path).resolve() / 'mlflow.db'}"


def _mlflow_client():
    """A client of the tracking store Ray's MLflow helper set up (mlflow's global URI)."""
    import mlflow
    return mlflow.MlflowClient()


def mlflow_callback(study: StudyRecord, path: str, uri: str | None):
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class StudyMLflow(MLflowLoggerCallback):
        """One MLflow run per trial (reopened on resume), named like the trial, nested under
        a parent run for the study that holds study.json and the final summary."""

        def setup(self, *args, **kwargs):
            # artifacts beside the database, not in ./mlruns of whatever the cwd is
            self.mlflow_util.setup_mlflow(
                tracking_uri=self.tracking_uri, experiment_name=self.experiment_name,
                artifact_location=_artifact_root(self.tracking_uri, path))
            super().setup(*args, **kwargs)
            # this subclass's own maps (the base's private _trial_runs is never read: every
            # hook that used it is replaced here)
            self.trial_runs: dict = {}     # Tune trial -> run id
            self.member_runs: dict = {}    # pack's Tune trial -> {member trial id: run id}
            self.parent = self.find_run("study") or self.mlflow_util.start_run(
                tags={**self.tags, "trial_id": "study", "kind": "study"},
                run_name=f"study {self.experiment_name}").info.run_id

        def on_experiment_end(self, trials, **info):
            client = _mlflow_client()
            for name in ("study.json", *(p.name for p in Path(path).glob("study-run-*.yaml"))):
                if (Path(path) / name).exists():
                    client.log_artifact(self.parent, str(Path(path) / name))
            report = _report(path)
            if report is not None:   # report.html/.md, LaTeX, CSV, figures: under report/
                client.log_artifacts(self.parent, str(report), artifact_path="report")
            # trials, not Tune trials: a pack counts its members
            size = [len(t.config["pack"]) if is_pack(t.config) else 1 for t in trials]
            done = sum(n for t, n in zip(trials, size) if t.status == "TERMINATED")
            client.log_metric(self.parent, "trials_finished", done)
            client.set_terminated(self.parent, "FINISHED" if done == sum(size) else "KILLED")
            super().on_experiment_end(trials, **info)

        def log_trial_start(self, trial):
            if is_pack(trial.config):   # not a trial: each member gets a run (below)
                return
            if trial not in self.trial_runs:
                self.trial_runs[trial] = self.open_run(trial.config, trial.trial_id)

        def open_run(self, config: dict, trial_id: str) -> str:
            """The trial's run (reopened when it exists: a resumed study)."""
            f = flatten_trial(config)
            tags = {**self.tags, "trial_id": trial_id, "seed": str(f.get("seed")),
                    "mlflow.parentRunId": self.parent,
                    "method": run_name(config, with_seed=False),
                    "method_label": config_label(config),
                    "dataset": f"{f.get('dataset')}-{f.get('imb_type', 'lt')}"}
            old = self.find_run(trial_id)
            if old:
                _mlflow_client().update_run(old, status="RUNNING")
                return old
            run = self.mlflow_util.start_run(tags=tags, run_name=trial_name(config, trial_id))
            self.mlflow_util.log_params(run_id=run.info.run_id,
                                        params_to_log=trial_params(config))
            return run.info.run_id

        def find_run(self, trial_id: str) -> str | None:
            client = _mlflow_client()
            runs = client.search_runs([self.mlflow_util.experiment_id],
                                      filter_string=f"tags.trial_id = '{trial_id}'")
            return runs[0].info.run_id if runs else None

        def log_trial_result(self, iteration, trial, result):
            if is_pack(trial.config):   # one run per member, fed from the pack's rows
                mine = self.member_runs.setdefault(trial, {})
                for _, config, row in member_rows(trial.config, result):
                    if row["trial_id"] not in mine:
                        mine[row["trial_id"]] = self.open_run(config, row["trial_id"])
                    self.log_row(mine[row["trial_id"]], row)
                return
            if trial not in self.trial_runs:
                self.log_trial_start(trial)
            self.log_row(self.trial_runs[trial], result)

        def log_row(self, run_id: str, row: dict) -> None:
            self.mlflow_util.log_metrics(run_id=run_id,
                                         metrics_to_log={k: v for k, v in row.items()
                                                         if _scalar(v)},
                                         step=int(row.get("epoch") or 0))

        def log_trial_end(self, trial, failed=False):
            status = "FAILED" if failed else "FINISHED"
            for run_id in self.member_runs.pop(trial, {}).values():
                self.mlflow_util.end_run(run_id=run_id, status=status)
            if trial in self.trial_runs:
                self.mlflow_util.end_run(run_id=self.trial_runs[trial], status=status)

    return StudyMLflow(tracking_uri=uri or default_mlflow_uri(path),
                       experiment_name=study.name,
                       tags={"study": str(study.name), "space": str(study.space)})


def _report(path: str) -> Path | None:
    """The study's report (``python -m analysis report``), written to STUDY/report for the
    parent run; a report that cannot be built is said in one line and skipped: the runs and
    their metrics are logged either way."""
    if is_remote(path):
        return None
    from analysis.report import AnalysisError, build_report
    try:
        return build_report(path)
    except (AnalysisError, OSError, ValueError) as e:
        print(f"elm-study: mlflow: no report attached to the study run ({e})")
        return None


def _artifact_root(uri: str, path: str) -> str | None:
    """``<study>/mlartifacts`` for the default store, None (MLflow's choice) otherwise."""
    if is_remote(path) or uri != default_mlflow_uri(path):
        return None
    return str(Path(path).resolve() / "mlartifacts")


def wandb_callback(study: StudyRecord):
    from ray.air.integrations.wandb import WandbLoggerCallback
    # offline runs (WANDB_MODE=offline) need no account; `wandb sync` uploads them later
    return WandbLoggerCallback(project=str(study.name), group=str(study.space),
                               log_config=True)

