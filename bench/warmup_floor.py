"""How many warm-up steps keep logit adjustment and Balanced Softmax stable in a short run:
the measurement behind ``min_warmup_steps`` and the demo's schedule (docs/recipe.md).

    python bench/warmup_floor.py                          # LA and BS, floors 4 8 16 32, seeds 0-2
    python bench/warmup_floor.py --losses ce --floors 40   # the CE reference at the chosen floor

Each run trains the embedded demo's data and schedule (search_spaces/studies/quickstart.yaml's
``base``) with ``warmup_unit step`` and ``min_warmup_steps`` set to the floor, one CPU thread
per run, ``--workers`` runs at a time, and prints one line per run as it ends: the training
loss of every epoch, the final test top-1 and how many classes the model predicts on the test
set. A collapsed run (docs/recipe.md: the first steps at a high LR) predicts 2-3 of the 10
classes and keeps a flat training loss; a stable one predicts 8-10. It looks at LA and BS only
(the losses that collapse), never at which of the demo's methods wins.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def demo_base() -> dict:
    import yaml
    base = yaml.safe_load((ROOT / "search_spaces/studies/quickstart.yaml").read_text())["base"]
    return {k: v for k, v in base.items() if k not in ("eval_every", "checkpoint_every")}


def one_run(job: dict) -> dict:
    import torch
    torch.set_num_threads(1)
    from trainables.config import TrialConfig
    from trainables.engine import Trainer
    cfg = TrialConfig.from_dict({**demo_base(), **job["set"], "loss": job["loss"],
                                 "seed": job["seed"], "warmup_unit": "step",
                                 "min_warmup_steps": job["floor"], "eval_every": 1000})
    t0 = time.perf_counter()
    trainer = Trainer(cfg, device="cpu")
    losses = [round(m["train_loss"], 3) for m in trainer.epochs()]
    confusion = trainer.confusion["test"]
    predicted = sum(1 for c in range(len(confusion)) if sum(row[c] for row in confusion) > 0)
    return {"loss": job["loss"], "floor": job["floor"], "seed": job["seed"],
            "warmup_steps": cfg.schedule()["warmup_steps"],
            "total_steps": cfg.schedule()["steps_per_epoch"] * cfg.epochs,
            "train_loss": losses, "test_top1": round(trainer.last_metrics["test_top1"], 2),
            "classes_predicted": predicted, "seconds": round(time.perf_counter() - t0, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--losses", nargs="+", default=["logit_adjust", "balanced_softmax"])
    p.add_argument("--floors", nargs="+", type=int, default=[4, 8, 16, 32])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="change the demo's base (e.g. batch_size=64)")
    p.add_argument("--json", help="also write every run's line to this file")
    a = p.parse_args(argv)
    changes = dict(kv.split("=", 1) for kv in a.set)
    from trainables.config import TrialConfig
    fields = TrialConfig.__dataclass_fields__
    for k in changes:
        if k not in fields:
            p.error(f"--set {k}: not a TrialConfig field")
    jobs = [{"loss": loss, "floor": f, "seed": s, "set": changes}
            for f in a.floors for loss in a.losses for s in a.seeds]
    out = []
    with mp.get_context("spawn").Pool(a.workers) as pool:
        for r in pool.imap_unordered(one_run, jobs):
            print(json.dumps(r), flush=True)
            out.append(r)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    print("\n| loss | floor (steps) | warm-up steps / run | seeds | test top-1 per seed | "
          "classes predicted per seed |")
    print("|---|---|---|---|---|---|")
    for f in a.floors:
        for loss in a.losses:
            rs = sorted((r for r in out if r["floor"] == f and r["loss"] == loss),
                        key=lambda r: r["seed"])
            print(f"| {loss} | {f} | {rs[0]['warmup_steps']} / {rs[0]['total_steps']} | "
                  f"{len(rs)} | {', '.join(str(r['test_top1']) for r in rs)} | "
                  f"{', '.join(str(r['classes_predicted']) for r in rs)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
