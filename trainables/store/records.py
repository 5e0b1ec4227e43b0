"""The study store's types: what a study folder holds, as typed records.

- :class:`StudyRecord` is ``study.json``: what was launched (the study file's name and source,
  where it is stored, the metric) and its runs, each a :class:`RunRecord` (its options, what it
  added and kept, the resources Ray gave each trial). The JSON layout is the one every earlier
  version wrote (tests/fixtures: a74942e's and the pre-move one), so folders read both ways.
- :class:`RunOptions` is a run's resources and rules (the ``resources:`` section of a study
  file and the flags that override it), checked once (:meth:`RunOptions.validated`).
- :class:`TrialRecord` is one trial folder read back: its key, config, status, rows,
  checkpoints and pack membership (:mod:`trainables.store.trials` reads them).

Nothing here imports Ray, pandas or torch: a study reads on a laptop, while it runs, or after
its driver was killed. Tune pickles the study's progress callback, and with it a StudyRecord
(its RunOptions, RunRecords, Resources), into every study folder by module path: these
classes stay at ``trainables.store.records``, and a field added later needs a default so that
older pickles still load.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path


class StudyError(ValueError):
    """Bad study input (name clash, unwritable storage, a damaged study.json...): exit code 2,
    nothing launched, nothing changed."""


# =========================================================================================
# a run's options
# =========================================================================================
@dataclass(frozen=True)
class RunOptions:
    """A run's resources and rules (study-file ``resources:`` keys, ``--cpus-per-trial`` ...).
    ``gpus_per_trial=None`` lets the launcher choose (a quarter GPU where the cluster has any).

    The one place where the defaults, a study file's ``resources:`` section, the command-line
    flags and the rules of an extension (``run FILE --into STUDY``) meet: every value comes from
    the flag when given, else from the file, else from the default, and a bad one is one
    StudyError naming the flag."""
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None
    max_concurrent: int | None = None
    max_failures: int = 3
    workers_per_trial: int = 1
    pack: int = 1                 # K > 1: up to K trials of a grid trained as one (trial packs)

    @staticmethod
    def flag(field: str) -> str:
        """The command-line spelling of a field (``--workers-per-trial``)."""
        return "--" + field.replace("_", "-")

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def resolve(cls, flags: dict, file_resources: dict | None = None) -> RunOptions:
        """Flag if given (not None), else the study file's ``resources:``, else the default."""
        file_resources = file_resources or {}
        values = {}
        for name in cls.fields():
            given = flags.get(name)
            if given is not None:
                values[name] = given
            elif name in file_resources:
                values[name] = file_resources[name]
        return cls(**values).validated()

    def validated(self) -> RunOptions:
        """Itself, or a StudyError naming the flag whose value cannot run (the rules are
        trainables.config's RESOURCE_RULES and pack_clash, which a study file's ``resources:``
        is checked by too)."""
        from trainables.config import RESOURCE_RULES, pack_clash
        for name, rule in RESOURCE_RULES.items():
            v = getattr(self, name)
            if v is None:           # not set: the launcher chooses (gpus_per_trial)
                continue
            if not rule.typed(v):
                raise StudyError(f"{self.flag(name)} expects {rule.wants}, got {v!r}")
            if not rule.allows(v):
                raise StudyError(f"{self.flag(name)} must be >= {rule.low}, got {v}")
        clash = pack_clash(dataclasses.asdict(self), self.flag)
        if clash:
            raise StudyError(clash)
        return self

    def to_json(self) -> dict:
        """The keys study.json records (at its top level and in each run entry)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict | None, under: RunOptions | None = None) -> RunOptions:
        """The options a study.json (or one of its run entries) recorded; keys an older file
        lacks take ``under``'s value (a run entry: the study's), else the default."""
        data, base = data or {}, under or cls()
        return dataclasses.replace(base, **{k: data[k] for k in cls.fields()
                                            if data.get(k) is not None})

    def for_extension(self, given_flags: dict) -> RunOptions:
        """The options of a new run added to a study that ran with ``self``: every flag given
        for it (a value, not None) is applied to the new run only (each run is its own Tune
        experiment and is resumed with its own options); the others keep the study's. A value
        that cannot run is refused with a StudyError naming the flag, never dropped."""
        unknown = sorted(set(given_flags) - set(self.fields()))
        if unknown:
            raise StudyError(f"--into: {', '.join(map(self.flag, unknown))} cannot change "
                             "between runs of a study")
        changes = {k: v for k, v in given_flags.items() if v is not None}
        return dataclasses.replace(self, **changes).validated()

    def changes_from(self, old: RunOptions) -> list[str]:
        """``--workers-per-trial 2 (was 1)``, one entry per value this run changes."""
        return [f"{self.flag(k)} {getattr(self, k)} (was {getattr(old, k)})"
                for k in self.fields() if getattr(self, k) != getattr(old, k)]


@dataclass(frozen=True)
class Resources:
    """What Ray gives one trial (with N workers: each worker): CPUs and a share of a GPU."""
    cpu: float = 1.0
    gpu: float = 0.0

    @classmethod
    def from_json(cls, data: dict | None) -> Resources | None:
        if data is None:
            return None
        return cls(cpu=float(data.get("cpu", 1.0)), gpu=float(data.get("gpu") or 0))

    def to_json(self) -> dict:
        """Ray's spelling ({"cpu": 1.0, "gpu": 0.25}): what the trainable dispatcher takes."""
        return {"cpu": self.cpu, "gpu": self.gpu}


# =========================================================================================
# study.json
# =========================================================================================
RUN_PREFIX = "run-"            # run k > 1 of a study is the Tune experiment <study>/run-<k>


@dataclass(frozen=True)
class RunRecord:
    """One run of a study (run 1 launched it; each ``run FILE --into STUDY`` adds one): its own
    Tune experiment, resumed with its own options."""
    run: int
    options: RunOptions = RunOptions()
    launched: int | None = None          # trials this run launched (None: not recorded)
    kept: int = 0                        # trials of its file already finished in the study
    unfinished_elsewhere: int = 0        # ... unfinished in an earlier run (resume finishes)
    source: str | None = None            # the study file
    spec_file: str | None = None         # its resolved copy beside study.json
    started_at: str | None = None
    command: str | None = None
    resources: Resources | None = None   # what Ray gave each trial (set when it started)

    @property
    def dir(self) -> str:
        """The run's experiment folder, relative to the study's."""
        return "." if self.run == 1 else f"{RUN_PREFIX}{self.run}"

    def experiment(self, study: str | Path) -> Path:
        return Path(study) if self.run == 1 else Path(study) / self.dir

    def to_json(self) -> dict:
        return {"run": self.run, "dir": self.dir, "spec_file": self.spec_file,
                "source": self.source, "launched": self.launched, "kept": self.kept,
                "unfinished_elsewhere": self.unfinished_elsewhere,
                "started_at": self.started_at, "command": self.command,
                **self.options.to_json(),
                **({"resources": self.resources.to_json()} if self.resources else {})}

    @classmethod
    def from_json(cls, data: dict, study_options: RunOptions) -> RunRecord:
        """A run entry; options an older file kept only at the study's level are the study's."""
        return cls(run=int(data.get("run", 1)),
                   options=RunOptions.from_json(data, under=study_options),
                   launched=data.get("launched"), kept=int(data.get("kept") or 0),
                   unfinished_elsewhere=int(data.get("unfinished_elsewhere") or 0),
                   source=data.get("source"), spec_file=data.get("spec_file"),
                   started_at=data.get("started_at"), command=data.get("command"),
                   resources=Resources.from_json(data.get("resources")))


@dataclass(frozen=True)
class StudyRecord:
    """``study.json``: what was launched and its runs, in run order. ``options`` are the newest
    run's (what an extension starts from); ``resources`` what Ray gave the newest run's trials."""
    name: str
    space: str | None = None             # the study file's name (``smoke``, ``table1`` ...)
    storage: str | None = None           # the root the study folder lies under
    source: str | None = None
    metric: str | None = None
    mode: str | None = None
    search: bool = False
    expected_trials: int | None = None   # every run's trials together
    options: RunOptions = RunOptions()
    runs: tuple[RunRecord, ...] = ()
    resources: Resources | None = None
    started_at: float | None = None      # when the newest run started (time.time())
    extra: dict = field(default_factory=dict, compare=False)   # keys another version wrote

    KNOWN = ("name", "space", "storage", "source", "metric", "mode", "search",
             "expected_trials", "runs", "resources", "started_at", "written_at",
             *RunOptions.fields())

    @property
    def last_run(self) -> RunRecord:
        return self.runs[-1]

    def run_entry(self, number: int) -> RunRecord | None:
        return next((r for r in self.runs if r.run == number), None)

    def options_of(self, number: int) -> RunOptions:
        """The options run ``number`` runs (was run) with: its own, else the study's."""
        run = self.run_entry(number)
        return run.options if run else self.options

    def with_started(self, resources: Resources, started_at: float) -> StudyRecord:
        """This record as its newest run starts: Ray's resources for it, and the time."""
        runs = self.runs[:-1] + (dataclasses.replace(self.runs[-1], resources=resources),) \
            if self.runs else self.runs
        return dataclasses.replace(self, resources=resources, started_at=started_at, runs=runs)

    def to_json(self) -> dict:
        return {**self.extra, **self.options.to_json(), "space": self.space,
                "source": self.source, "name": self.name, "storage": self.storage,
                "metric": self.metric, "mode": self.mode, "search": self.search,
                "expected_trials": self.expected_trials,
                "runs": [r.to_json() for r in self.runs],
                **({"resources": self.resources.to_json()} if self.resources else {}),
                **({"started_at": self.started_at} if self.started_at is not None else {})}

    @classmethod
    def from_json(cls, data: dict) -> StudyRecord:
        """study.json as any version wrote it: a file without ``runs`` (the first versions)
        is one run of every trial, with the study's options and resources."""
        options = RunOptions.from_json(data)
        resources = Resources.from_json(data.get("resources"))
        runs = tuple(RunRecord.from_json(r, options) for r in data.get("runs") or []) or (
            RunRecord(run=1, options=options, launched=data.get("expected_trials"),
                      resources=resources),)
        return cls(name=str(data.get("name")), space=data.get("space"),
                   storage=data.get("storage"), source=data.get("source"),
                   metric=data.get("metric"), mode=data.get("mode"),
                   search=bool(data.get("search")),
                   expected_trials=data.get("expected_trials"), options=options, runs=runs,
                   resources=resources, started_at=data.get("started_at"),
                   extra={k: v for k, v in data.items() if k not in cls.KNOWN})


# =========================================================================================
# a trial folder
# =========================================================================================
FINISHED = ("terminated", "stopped", "diverged")   # a trial in these states is not run again


def trial_status(last_row: dict | None, tune_status: str | None, errored: bool = False) -> str:
    """THE rule for a trial's status, which every reader applies (``elm-study status``, the
    report, ``status --watch``, the console's ``done`` line): terminated / diverged / stopped /
    errored / running (running also covers pending and killed).

    ``last_row``: the trial's last reported row (its ``status`` is the trainer's own word:
    running, finished, diverged); ``tune_status``: what Tune says of the trial (TERMINATED,
    ERROR, RUNNING, PENDING...; None when unknown); ``errored``: the trial folder holds Tune's
    error file. ``stopped``: Tune ended it before its last epoch (an ASHA early stop), which the
    trainer cannot know, so its last row still says running."""
    row_status = (last_row or {}).get("status")
    if row_status == "diverged":
        return "diverged"
    if row_status == "finished":
        return "terminated"
    if errored or tune_status == "ERROR":
        return "errored"
    if tune_status == "TERMINATED" and last_row:
        return "stopped"
    return "running"


@dataclass(frozen=True)
class PackMembership:
    """A trial trained in a pack (docs/packing.md): the pack's Tune trial and its place there."""
    pack_trial_id: str
    member: int


@dataclass(frozen=True)
class TrialRecord:
    """One trial folder of a study, read back (:func:`trainables.store.trials.study_trials`).

    ``config``: the trial's TrialConfig fields with the defaults filled in (its raw fields when
    they no longer make a valid config: ``trial_key`` is then None unless a row recorded it);
    ``rows``: every reported row as written (a retried epoch appears twice: the compute it
    really used); ``epochs``: one row per epoch, the later of a retried epoch's rows."""
    trial_dir: Path
    run: int
    trial_id: str
    trial_key: str | None
    config: dict
    rows: tuple[dict, ...]
    epochs: tuple[dict, ...]
    status: str
    pack: PackMembership | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def last_row(self) -> dict:
        return self.epochs[-1] if self.epochs else {}

    @property
    def evaluations(self) -> list[dict]:
        """The rows of the epochs it was evaluated at (test metrics), in epoch order."""
        return [r for r in self.epochs if "test_top1" in r]

    @property
    def checkpoints(self) -> list[Path]:
        """Its checkpoint files, in the order trainables.checkpoints reads them."""
        from trainables.checkpoints import checkpoints_in   # torch: only when asked
        return checkpoints_in(self.trial_dir)
