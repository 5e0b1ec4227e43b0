"""What a run may be told, typed and checked once: RunOptions (a run's resources and rules),
ClusterOptions (where it runs) and ConsoleOptions (what it prints and logs).

RunOptions is the one place where the defaults, a study file's ``resources:`` section, the
command-line flags and the rules of an extension (``run FILE --into STUDY``) meet: every
value comes from the flag when given, else from the file, else from the default, and a bad one
is one StudyError naming the flag. No module keeps settings of its own.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from study.store import StudyError


@dataclass(frozen=True)
class RunOptions:
    """A run's resources and rules (study-file ``resources:`` keys, ``--cpus-per-trial`` ...).
    ``gpus_per_trial=None`` lets the launcher choose (a quarter GPU where the cluster has any)."""
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
        """Itself, or a StudyError naming the flag whose value cannot run."""
        for name in ("cpus_per_trial", "gpus_per_trial", "max_failures"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise StudyError(f"{self.flag(name)} must be >= 0, got {v}")
        for name in ("max_concurrent", "workers_per_trial", "pack"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise StudyError(f"{self.flag(name)} must be >= 1, got {v}")
        if self.pack > 1 and self.workers_per_trial > 1:
            raise StudyError(f"--pack {self.pack} cannot be combined with --workers-per-trial "
                             f"{self.workers_per_trial}: a pack is one process (choose one)")
        return self

    def to_meta(self) -> dict:
        """The keys study.json (and each run entry in it) records."""
        return dataclasses.asdict(self)

    @classmethod
    def from_meta(cls, meta: dict | None) -> RunOptions:
        """The options a study.json (or one of its run entries) recorded; keys an older
        study.json lacks take their defaults."""
        meta = meta or {}
        return cls(**{k: meta[k] for k in cls.fields() if meta.get(k) is not None})

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
class ClusterOptions:
    """Where a run goes: ``local`` starts Ray here, ``auto`` or HOST:PORT joins a cluster."""
    address: str = "local"
    dashboard: bool = False
    dashboard_host: str = "127.0.0.1"

    @property
    def local(self) -> bool:
        return self.address in (None, "local")


@dataclass(frozen=True)
class ConsoleOptions:
    """What a run prints and where it also logs: ``--verbose`` keeps Ray Tune's own tables and
    INFO logging; ``log`` holds the parsed ``--log`` targets ((kind, uri) pairs); ``job_name``
    is what the Ray dashboard's Jobs page shows for the driver."""
    verbose: bool = False
    log: tuple = ()
    job_name: str | None = None
