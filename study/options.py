"""What a run may be told, typed and checked once: RunOptions (a run's resources and rules;
defined with the study store's records, which keep it in study.json), ClusterOptions (where it
runs) and ConsoleOptions (what it prints and logs).

RunOptions is the one place where the defaults, a study file's ``resources:`` section, the
command-line flags and the rules of an extension (``run FILE --into STUDY``) meet: every
value comes from the flag when given, else from the file, else from the default, and a bad one
is one StudyError naming the flag. No module keeps settings of its own.
"""
from __future__ import annotations

from dataclasses import dataclass

from trainables.store.records import RunOptions  # noqa: F401  (study's name for it)


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
