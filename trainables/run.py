"""Train one configuration from the command line, without Ray.

    python -m trainables.run --dataset fashion_mnist --imb-type lt --ratio 100 \
        --loss elm --lam 0.5 --drw --epochs 4 [--out runs/x] [--resume runs/x/last.pt]

Every TrialConfig field is a flag (``--max-m``, ``--no-augment``...); ``--config file.yaml``
gives a base config that flags override. With ``--out`` it writes ``config.json``,
``metrics.jsonl`` (one line per epoch) and checkpoints (``last.pt``) there.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import fields
from pathlib import Path

import yaml

from trainables.config import TrialConfig, parse_value
from trainables.jsonio import dumps_strict


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trainables.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML or JSON file with TrialConfig fields")
    p.add_argument("--out", help="folder for config.json, metrics.jsonl and checkpoints")
    p.add_argument("--resume", help="checkpoint to resume from (e.g. OUT/last.pt)")
    p.add_argument("--quiet", action="store_true", help="print only the final line")
    for f in fields(TrialConfig):
        if f.name == "extra":
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", "bool | None"):
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                           default=None)
        else:
            p.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper())
    return p


def config_from_args(args: argparse.Namespace) -> TrialConfig:
    base: dict = {}
    if args.config:
        text = Path(args.config).read_text()
        base = yaml.safe_load(text) or {}   # YAML is a superset of JSON
    for f in fields(TrialConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            base[f.name] = parse_value(f.name, v) if isinstance(v, str) else v
    return TrialConfig.from_dict(base)


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


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
    except (ValueError, OSError, yaml.YAMLError) as e:
        parser.exit(2, f"error: {e}\n")
    from trainables.engine import Trainer  # heavy imports after the config is known good
    trainer = Trainer(cfg)
    if args.resume:
        trainer.load(args.resume)
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(cfg.resolved(), indent=1))
    print(f"# {cfg.dataset}-{cfg.imb_type} r={cfg.ratio:g}  loss={cfg.loss} "
          f"{cfg.loss_hparams()}  drw={cfg.drw}  epochs={cfg.epochs}  device={trainer.device}  "
          f"train={sum(trainer.data.class_counts)} counts={trainer.data.class_counts}", flush=True)
    for m in trainer.epochs():
        if not args.quiet or m["done"]:
            print(format_line(m), flush=True)
        if out:
            with open(out / "metrics.jsonl", "a") as fh:
                fh.write(dumps_strict(m) + "\n")
            if m["done"] or m["epoch"] % cfg.checkpoint_every == 0:
                trainer.save(out / "last.pt")
    m = trainer.last_metrics
    if m.get("test_top1") is not None:
        print(f"final top1 {m['test_top1']:.2f}  best top1 {m['best_test_top1']:.2f} "
              f"(epoch {m['best_epoch']}, selected on the test set)  status {trainer.status}")
    return 0 if trainer.status == "finished" else 1


if __name__ == "__main__":
    sys.exit(main())
