"""Train one configuration from the command line, without Ray.

    python -m trainables.run --dataset fashion_mnist --imb-type lt --ratio 100 \\
        --loss elm --lam 0.5 --drw --epochs 4 [--out runs/x] [--resume runs/x/last.pt]

Every TrialConfig field is a flag (``--max-m``, ``--no-augment``...); ``--config file.yaml``
gives a base config that flags override. With ``--out`` it writes ``config.json``,
``metrics.jsonl`` (one line per epoch) and checkpoints (``last.pt``, every
``checkpoint_every`` epochs and at the end, with the final ``confusion.json`` beside it) there,
through the same checkpoint sink as the Ray trainables (trainables.checkpoints.write_epoch).
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import MISSING, fields
from pathlib import Path

import yaml

from trainables.cli import OneLineParser, folder_problem
from trainables.checkpoints import (LAST_FILE, CheckpointError, check_checkpoint,
                                    load_checkpoint, write_epoch)
from trainables.config import (HEADS, IMB_TYPES, LARGE_SCALE_DATASETS, PRECISIONS,
                               REMOVED_FIELDS, TrialConfig, parse_value, recipe_defaults)
from trainables.data import describe_dataset, list_datasets
from trainables.jsonio import dumps_strict
from trainables.losses import LOSSES, describe_loss, list_losses
from trainables.models import describe_model, list_models

PROG = "python -m trainables.run"
GROUPS = {"data": "data", "loss": "loss (None = the loss's own default)", "model": "model",
          "schedule": "schedule and optimisation (epochs are 0-based)",
          "execution": "execution"}
CHOICES = {"dataset": list_datasets, "loss": list_losses, "model": list_models,
           "head": lambda: list(HEADS), "precision": lambda: list(PRECISIONS),
           "imb_type": lambda: list(IMB_TYPES)}
METRICS_FILE = "metrics.jsonl"   # --out DIR: one strict-JSON line per epoch (appended on resume)
_MAX_LINE = 600   # characters of an error line (torch's unpickling errors run to pages)


class UsageError(Exception):
    """An expected failure (bad value, missing file, unwritable folder...): one line, exit 2."""


# =========================================================================================
# the parser, generated from TrialConfig's fields
# =========================================================================================
def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=PROG, description=__doc__, epilog=_epilog(),
                usage="%(prog)s [--config FILE] [--out DIR] [--resume CKPT] [--FIELD VALUE ...]",
                formatter_class=argparse.RawDescriptionHelpFormatter)
    run = p.add_argument_group("run")
    run.add_argument("--config", metavar="FILE",
                     help="YAML or JSON mapping of TrialConfig fields; flags override it")
    run.add_argument("--out", metavar="DIR",
                     help="folder for config.json, metrics.jsonl and checkpoints (last.pt)")
    run.add_argument("--resume", metavar="CKPT",
                     help="checkpoint to resume from (e.g. OUT/last.pt); same config needed")
    run.add_argument("--quiet", action="store_true", help="print only the final line")
    groups = {g: p.add_argument_group(title) for g, title in GROUPS.items()}
    for f in fields(TrialConfig):
        if f.name == "extra":       # free-form notes: --config only
            continue
        group = groups[f.metadata["group"]]
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", "bool | None"):
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                               default=None, help=_help(f))
        else:
            group.add_argument(flag, dest=f.name, default=None, help=_help(f),
                               metavar=_metavar(f))
    return p


def _help(f) -> str:
    text = f.metadata["help"]
    if f.name in CHOICES:
        text += f"; one of: {', '.join(CHOICES[f.name]())}"
    default = f.default if f.default is not MISSING else f.default_factory()
    large = _large_scale_values(f.name, default)
    if default is not None or "None" not in text:   # else the help says what None means
        text += f" (default: {_show(default)}{'; ' + large if large else ''})"
    elif large:
        text += f" ({large})"
    return text.replace("%", "%%")


def _large_scale_values(name: str, default) -> str:
    """'90 for imagenet_lt, places_lt, inat2018': the large-scale datasets' own defaults of a
    field, where they are not the CIFAR one, datasets sharing a value named together."""
    by_value: dict[str, list[str]] = {}
    for dataset in LARGE_SCALE_DATASETS:
        value = recipe_defaults(dataset).get(name, default)
        if value != default:
            by_value.setdefault(_show(value), []).append(dataset)
    return "; ".join(f"{v} for {', '.join(ds)}" for v, ds in by_value.items())


def _show(v) -> str:
    return ",".join(map(str, v)) if isinstance(v, tuple) else str(v)


def _metavar(f) -> str:
    if f.name in CHOICES:
        return "NAME"
    return {"int": "N", "float": "X", "str": "TEXT"}.get(f.type.split(" |")[0], "VALUE")


def _epilog() -> str:
    def block(title, names, describe, extra=lambda n: ""):
        rows = [f"  {n:<17} {describe(n)}{extra(n)}" for n in names]
        return f"{title}:\n" + "\n".join(rows)
    takes = lambda n: f" [{', '.join(sorted(LOSSES[n].defaults))}]" if LOSSES[n].defaults \
        else ""   # noqa: E731
    return "\n\n".join([block("datasets", list_datasets(), describe_dataset),
                        block("losses [hyper-parameters they take]", list_losses(),
                              describe_loss, takes),
                        block("models", list_models(), describe_model)])


# =========================================================================================
# checks before anything heavy is built
# =========================================================================================
def config_from_args(args: argparse.Namespace) -> TrialConfig:
    base: dict = {}
    if args.config:
        base = _read_config_file(args.config)
    for f in fields(TrialConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            base[f.name] = parse_value(f.name, v) if isinstance(v, str) else v
    return TrialConfig.from_dict(base)


def _read_config_file(path: str) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text())   # YAML is a superset of JSON
    except OSError as e:
        raise UsageError(f"--config {path}: cannot read it ({e.strerror})") from e
    except yaml.YAMLError as e:
        raise UsageError(f"--config {path} is not valid YAML/JSON: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"--config {path} must hold a mapping of TrialConfig fields, "
                         f"not a {type(data).__name__}")
    known = {f.name for f in fields(TrialConfig)} | set(REMOVED_FIELDS)
    unknown = sorted(map(str, set(data) - known))
    if unknown:
        raise UsageError(f"--config {path}: unknown key(s) {unknown}; valid keys: "
                         f"{sorted(known - set(REMOVED_FIELDS))}")
    return data


def load_resume(path: str, cfg: TrialConfig) -> dict:
    """The checkpoint's state, checked to be this config's before anything is built."""
    try:
        state = load_checkpoint(path)
        check_checkpoint(state, cfg)
    except CheckpointError as e:
        raise UsageError(f"--resume: {e}") from e
    return state


def check_out(out: Path, resuming: bool) -> None:
    """``out`` can be created (or exists) and is writable, and holds no other run unless this
    one resumes (metrics.jsonl is appended to: two runs' epochs must not mix); creates
    nothing."""
    held = [n for n in (METRICS_FILE, LAST_FILE) if (out / n).exists()]
    if held and not resuming:
        raise UsageError(f"--out {out} already holds a run ({', '.join(held)}); continue it "
                         f"with --resume {out / LAST_FILE} or choose another --out")
    problem = folder_problem(out, create=False)
    if problem and problem[1] == "not a folder":
        raise UsageError(f"--out {out}: {problem[0]} exists and is not a folder")
    if problem:
        raise UsageError(f"--out {out}: cannot create files in {problem[0]} ({problem[1]})")


def check_data(cfg: TrialConfig) -> None:
    """The dataset's files are where the config says (read later, after every check)."""
    from trainables.data.registry import check_data_location
    try:
        check_data_location(cfg)
    except FileNotFoundError as e:
        msg = str(e)
        if msg.startswith("dataset "):
            msg = "--" + msg
        raise UsageError(msg.replace("init_weights ", "--init-weights ", 1)) from e


def prepare(args) -> tuple[TrialConfig, dict | None, Path | None]:
    """Config, resume state and output folder, each checked; cheap checks first."""
    try:
        cfg = config_from_args(args)
    except ValueError as e:
        raise UsageError(f"{e}") from e
    state = load_resume(args.resume, cfg) if args.resume else None
    out = Path(args.out).expanduser() if args.out else None
    if out:
        check_out(out, resuming=state is not None)
    check_data(cfg)
    return cfg, state, out


def build_trainer(cfg: TrialConfig, state: dict | None):
    """The Trainer; failures of the data (bad lists, missing images) and of the device are
    the user's to fix and come back as UsageError."""
    from trainables.data.build import build_data
    from trainables.engine import Trainer, resolve_device
    try:
        device = resolve_device(cfg.device)
    except ValueError as e:
        raise UsageError(str(e)) from e
    try:
        data = build_data(cfg, device)
    except (OSError, ValueError) as e:
        raise UsageError(f"--dataset {cfg.dataset}: {e}") from e
    trainer = Trainer(cfg, device=device, data=data)
    if state is not None:
        trainer.load_state_dict(state)
    return trainer


# =========================================================================================
# the run
# =========================================================================================
def format_line(m: dict) -> str:
    def pct(k):
        v = m.get(k)
        return "  -  " if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:5.2f}"
    s = (f"epoch {m['epoch']:3d}  lr {m['lr']:.2e}  loss {m['train_loss']:.4f}  "
         f"train {m['train_top1']:5.2f}  {m['train_images_per_s']:7.0f} img/s")
    if "test_top1" in m:
        s += (f" | test top1 {pct('test_top1')} top5 {pct('test_top5')}  many {pct('test_many')}"
              f" med {pct('test_medium')} few {pct('test_few')}")
    if "val_top1" in m:
        s += f" | val top1 {pct('val_top1')}"
    return s + ("" if m["status"] == "running" else f"  [{m['status']}]")


def _counts_words(counts: list[int], shown: int = 20) -> str:
    """The per-class training counts for the header: all of them up to ``shown`` classes,
    else the head and the tail (iNaturalist's 8,142 made a line of ~40,000 characters)."""
    if len(counts) <= shown:
        return str(list(counts))
    return (f"[{', '.join(map(str, counts[:3]))}, ... {', '.join(map(str, counts[-3:]))}] "
            f"({len(counts):,} classes, {max(counts)} to {min(counts)})")


def train(trainer, cfg: TrialConfig, out: Path | None, quiet: bool) -> int:
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(dumps_strict(cfg.resolved(), indent=1))
    print(f"# {cfg.dataset}-{cfg.imb_type} r={cfg.ratio:g}  loss={cfg.loss} "
          f"{cfg.loss_hparams()}  drw={cfg.drw}  epochs={cfg.epochs}  device={trainer.device}  "
          f"train={sum(trainer.data.class_counts)} counts={_counts_words(trainer.data.class_counts)}  "
          f"data {_fingerprint_words(trainer.data)}", flush=True)
    for m in trainer.epochs():
        if not quiet or m["done"]:
            print(format_line(m), flush=True)
        if out:
            write_epoch(trainer, m, cfg, lambda row, _folder: _append_line(out, row),
                        folder=out, name=LAST_FILE)
    m = trainer.last_metrics
    if m.get("test_top1") is not None:
        print(f"final top1 {m['test_top1']:.2f}  best top1 {m['best_test_top1']:.2f} "
              f"(epoch {m['best_epoch']}, selected on the test set)  status {trainer.status}")
        if m.get("val_best_epoch"):
            where = ("the validation split held out of TRAIN"
                     if m.get("val_split") == "train_holdout" else "the validation list")
            print(f"validation-selected top1 {m['val_selected_test_top1']:.2f} "
                  f"(epoch {m['val_best_epoch']}, selected on {where})")
    print(cost_line(m), flush=True)
    return 0 if trainer.status == "finished" else 1


def _fingerprint_words(data) -> str:
    fp = getattr(data, "fingerprint", "")
    return f"{fp} (sources {data.source_fingerprint})" if fp else "unknown"


def cost_line(m: dict) -> str:
    """'cost 41.3 CPU-s (2 CPUs, cpu; 20.7 s wall, 2 attempts)': the trial's cost over every
    attempt (trainables.cost)."""
    if m.get("cost_wall_s") is None:
        return "cost unknown"
    kind = m.get("cost_kind") or "cpu"
    held = (f"{m.get('cost_share', 0):g} CPUs" if kind == "cpu"
            else f"{m.get('cost_share', 0):g} GPU")
    return (f"cost {m.get(f'cost_{kind}_s', 0):.1f} {kind.upper()}-s ({held}, "
            f"{m.get('cost_device')}; {m['cost_wall_s']:.1f} s wall, "
            f"{m.get('cost_attempts', 1)} attempt{'s' * (m.get('cost_attempts', 1) != 1)})")


def _append_line(out: Path, row: dict) -> None:
    with open(out / METRICS_FILE, "a") as fh:
        fh.write(dumps_strict(row) + "\n")


def fail(message: str) -> None:
    """Print ``PROG: error: message`` as one line on stderr and exit with status 2 (as
    argparse does for a bad flag: every usage error ends the same way)."""
    line = " ".join(str(message).split())
    if len(line) > _MAX_LINE:
        line = line[:_MAX_LINE - 3] + "..."
    print(f"{PROG}: error: {line}", file=sys.stderr)
    raise SystemExit(2)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg, state, out = prepare(args)
        trainer = build_trainer(cfg, state)
    except UsageError as e:
        fail(str(e))
    except ModuleNotFoundError as e:   # an optional package; our own modules keep the trace
        if (e.name or "").split(".")[0] in ("trainables", "study", "analysis", "search_spaces"):
            raise
        fail(f"this run needs the optional package '{e.name}' (pip install {e.name})")
    return train(trainer, cfg, out, args.quiet)


if __name__ == "__main__":
    sys.exit(main())
