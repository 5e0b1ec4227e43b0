"""Reading what studies wrote: one module for the trainable, ``study`` and ``analysis``.

A study folder is one or more Ray Tune experiments: the first run's trials sit directly in the
folder, each later run (an extension: ``elm-study run ... --into STUDY``) in ``run-<k>/``.
Every trial folder holds ``params.json`` (its Tune config) and ``result.json`` (one JSON line per
reported epoch). Nothing here needs Ray or pandas, so a study can be read while it runs, after
its driver was killed, or on a laptop without Ray.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

from trainables.config import TrialConfig
from trainables.methods import flatten_trial

RUN_PREFIX = "run-"
FINISHED = ("terminated", "stopped", "diverged")   # a trial in these states is not run again


def _lenient_constant(name: str) -> float:
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]


def parse_json_lines(text: str) -> list[dict]:
    """JSON lines; a torn line (a writer killed mid-line) is skipped. Old files may carry NaN."""
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line, parse_constant=_lenient_constant)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def experiment_dirs(study: str | Path) -> list[Path]:
    """The Tune experiments of a study, in run order (the folder itself, then run-2, ...)."""
    root = Path(study)
    runs = sorted((p for p in root.glob(f"{RUN_PREFIX}*") if p.is_dir()
                   and p.name[len(RUN_PREFIX):].isdigit()),
                  key=lambda p: int(p.name[len(RUN_PREFIX):]))
    return [root, *runs]


def run_number(experiment: Path) -> int:
    name = experiment.name
    return int(name[len(RUN_PREFIX):]) if name.startswith(RUN_PREFIX) and \
        name[len(RUN_PREFIX):].isdigit() else 1


_TRIAL_ID = re.compile(r"_([0-9a-f]{5})_(\d{5})(?:_|$)")     # Tune's '<experiment>_<index>'


def _launch_order(trial_dir: Path):
    """A trial folder's place in its experiment: Tune's trial index (the study file's order of
    methods and seeds), whatever the folder's name says before it."""
    found = _TRIAL_ID.findall(trial_dir.name)
    return (0, int(found[-1][1]), trial_dir.name) if found else (1, 0, trial_dir.name)


def trial_dirs(study: str | Path) -> list[Path]:
    """Folders of every run of the study that hold a trial (they contain params.json), each
    run's in launch order."""
    return [p for exp in experiment_dirs(study)
            for p in sorted((q.parent for q in exp.glob("*/params.json")), key=_launch_order)]


def read_results(trial_dir: Path) -> list[dict]:
    """Every reported epoch of one trial, as written (retried epochs appear twice)."""
    path = Path(trial_dir) / "result.json"
    return parse_json_lines(path.read_text()) if path.exists() else []


DECOUPLED_DIR = "decoupled"    # STUDY/decoupled/<stage-1 trial id>_<crt|lws>/ (trainables.decoupled)


def decoupled_runs(study: str | Path) -> list[tuple[Path, list[dict]]]:
    """The finished decoupled (cRT/LWS) runs of a study: (folder, every reported row), in
    folder order; a run whose last evaluation is not ``done`` is left out."""
    out = []
    for d in sorted((Path(study) / DECOUPLED_DIR).glob("*/")):
        rows = read_results(d)
        evals = [r for r in rows if "test_top1" in r]
        if evals and evals[-1].get("done"):
            out.append((d, rows))
    return out


def epoch_rows(results: list[dict]) -> list[dict]:
    """One row per epoch, in epoch order: an epoch retrained after a retry from an older
    checkpoint is reported twice, and the later row is the one the final model went through."""
    by_epoch, other = {}, []
    for r in results:
        if isinstance(r.get("epoch"), int):
            by_epoch[r["epoch"]] = r
        else:
            other.append(r)
    return [by_epoch[e] for e in sorted(by_epoch)] + other


def tune_statuses(experiment: str | Path) -> dict:
    """trial_id -> Tune's status (TERMINATED, ERROR, RUNNING, PENDING...) from the newest
    experiment state Tune wrote in one experiment folder (plain JSON; {} if there is none)."""
    # newest by the timestamp in the name (Tune's own rule): every driver session writes its
    # own file, and the final sync re-copies older ones, so mtimes do not order them
    states = sorted(Path(experiment).glob("experiment_state-*.json"))
    for path in reversed(states):
        try:
            data = json.loads(path.read_text())
            out = {}
            for entry in data.get("trial_data", []):
                trial = json.loads(entry[0]) if isinstance(entry[0], str) else entry[0]
                out[trial["trial_id"]] = trial.get("status")
            return out
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            continue   # torn by a killed driver: try the previous one
    return {}


def trial_state(results: list[dict], trial_dir: Path, tune_status: str | None = None) -> str:
    """terminated / diverged / stopped / errored / running (running also covers pending and
    killed). ``stopped``: Tune ended it before its last epoch (an ASHA early stop)."""
    last = results[-1] if results else {}
    if last.get("status") == "diverged":
        return "diverged"
    if last.get("status") == "finished":
        return "terminated"
    if (trial_dir / "error.txt").exists() or (trial_dir / "error.pkl").exists():
        return "errored"
    if tune_status == "ERROR":
        return "errored"
    if tune_status == "TERMINATED" and results:
        return "stopped"
    return "running"


def trial_id_of(d: Path, results: list[dict]) -> str:
    if results and results[-1].get("trial_id"):
        return results[-1]["trial_id"]
    parts = d.name.split("_")          # <trainable>_<exp>_<index>_<n>_...: Tune's naming
    for i in range(len(parts) - 1):
        if (len(parts[i]) == 5 and all(c in "0123456789abcdef" for c in parts[i])
                and len(parts[i + 1]) == 5 and parts[i + 1].isdigit()):
            return f"{parts[i]}_{parts[i + 1]}"
    return d.name


def trial_config(trial_dir: Path) -> tuple[dict, str | None]:
    """(the trial's fields with TrialConfig's defaults filled in, its key) from params.json;
    (raw fields, None) when they no longer make a valid config."""
    flat = flatten_trial(json.loads((Path(trial_dir) / "params.json").read_text()))
    try:
        cfg = TrialConfig.from_dict(flat)
    except ValueError:
        return flat, None
    return cfg.to_dict(), cfg.trial_key()


def study_trials(study: str | Path) -> list[dict]:
    """One record per trial folder of every run: where it is, its run, key, Tune id, state,
    full config and its per-epoch rows (``epochs``, retried epochs de-duplicated; ``raw``)."""
    records = []
    for exp in experiment_dirs(study):
        statuses = tune_statuses(exp)
        for params in sorted(exp.glob("*/params.json")):
            d = params.parent
            raw = read_results(d)
            rows = epoch_rows(raw)
            config, key = trial_config(d)
            trial_id = trial_id_of(d, raw)
            # the key recorded when the trial ran wins: it names what was really computed,
            # even if a default changed in the code since
            recorded = next((r["trial_key"] for r in reversed(raw) if r.get("trial_key")), None)
            records.append({"trial_dir": d, "run": run_number(exp), "trial_id": trial_id,
                            "trial_key": recorded or key, "config": config, "raw": raw,
                            "epochs": rows,
                            "status": trial_state(rows, d, statuses.get(trial_id))})
    return records


def finished_keys(study: str | Path) -> dict[str, str]:
    """trial key -> trial id of a finished trial, for every key finished in any run."""
    return {t["trial_key"]: t["trial_id"] for t in study_trials(study)
            if t["status"] in FINISHED and t["trial_key"]}


def one_per_key(records: list[dict]) -> list[dict]:
    """A retried or duplicated key counts once: its finished trial (the latest run's if several
    finished), else its latest trial. Records without a key are all kept."""
    best: dict[str, dict] = {}
    for t in records:
        k = t.get("trial_key")
        if not k:
            continue
        old = best.get(k)
        rank = (t["status"] in FINISHED, t["run"])
        if old is None or rank >= (old["status"] in FINISHED, old["run"]):
            best[k] = t
    keep = {id(t) for t in best.values()}
    return [t for t in records if not t.get("trial_key") or id(t) in keep]
