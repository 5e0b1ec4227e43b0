"""Where a training step's time goes: the reference loop and each engine variant, profiled.

    python bench/profile_step.py [--steps 10] [--device auto] [--variants ...] [--json out.json]

Same models, data and loss as ``bench/train_throughput.py`` (its functions are reused), after
its warm-up. torch.profiler records every operator of ``--steps`` training steps; each op's
*self* time is put in one bucket (convolutions, batch norm, optimiser, loss, augmentation and
indexing, dtype casts and copies, element-wise, waiting for the DataLoader, other), and the wall
time no aten operator accounts for is Python and dispatch overhead (*and, with
torch.compile, the fused Inductor kernels, which are not aten ops). The table answers "what limits
the remaining gap" with measurements: on a 2-core CPU the step is arithmetic-bound
(convolutions), on a GPU the same table shows launch overhead as the unaccounted share.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import cli  # noqa: E402
from bench.train_throughput import (  # noqa: E402
    VARIANTS, sync_device, baseline, engine, fake_cifar10_lt)

# first match wins; matched against the lower-cased operator / record-function name
BUCKETS = (
    ("data wait (DataLoader)", ("dataloader", "_multiprocessingdataloaderiter")),
    ("convolution fwd+bwd", ("conv",)),
    ("batch norm fwd+bwd", ("batch_norm", "batchnorm")),
    ("optimiser (SGD)", ("sgd", "_foreach", "optimizer")),
    ("loss (LDAM + softmax CE)", ("nll", "log_softmax", "cross_entropy", "normalize",
                                  "linalg_vector_norm", "norm")),
    ("augmentation / indexing", ("index", "gather", "scatter", "flip", "where", "randperm",
                                 "randint", "pad", "roll", "select", "slice", "narrow",
                                 "take", "bernoulli", "rand")),
    ("casts / copies", ("copy_", "_to_copy", "to_dtype", "contiguous", "clone")),
    ("element-wise (relu, add, mul...)", ("relu", "threshold", "add", "mul", "div", "sub",
                                          "fill_", "zero_", "sum", "mean", "addmm", "mm",
                                          "avg_pool", "mean_backward", "adaptive")),
)


def bucket_of(name: str) -> str:
    low = name.lower()
    for bucket, keys in BUCKETS:
        if any(k in low for k in keys):
            return bucket
    return "other ops"


def profile(train_steps, device, steps: int, warmup: int) -> dict:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile
    train_steps(warmup)                       # compile, autotune, workers: not profiled
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sync_device(device)
    with torch_profile(activities=acts) as prof:
        t = time.perf_counter()
        train_steps(steps)
        sync_device(device)
        wall = time.perf_counter() - t
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    by_bucket, top = defaultdict(float), []
    for ev in prof.key_averages():
        if ev.key.startswith("ProfilerStep") or ev.key.startswith("## "):
            continue
        us = float(getattr(ev, attr, 0.0) or 0.0)
        if us <= 0:
            continue
        by_bucket[bucket_of(ev.key)] += us / 1e6
        top.append((us / 1e6, ev.key, ev.count))
    accounted = sum(by_bucket.values())
    top.sort(reverse=True)
    return {"wall_s": wall, "step_ms": 1e3 * wall / steps,
            "buckets_s": dict(sorted(by_bucket.items(), key=lambda kv: -kv[1])),
            "unaccounted_s": max(wall - accounted, 0.0),
            "top_ops": [{"op": k, "self_s": s, "calls": c} for s, k, c in top[:12]]}


def print_table(name: str, r: dict) -> None:
    wall = r["wall_s"]
    print(f"\n## {name}: {r['step_ms']:.1f} ms/step ({wall:.2f} s profiled)")
    for b, s in r["buckets_s"].items():
        print(f"  {b:36s} {1e3 * s:9.1f} ms  {100 * s / wall:5.1f} %")
    print(f"  {'outside aten ops (Python, dispatch, *)':36s} {1e3 * r['unaccounted_s']:9.1f} ms  "
          f"{100 * r['unaccounted_s'] / wall:5.1f} %")
    print("  top ops by self time:")
    for t in r["top_ops"][:8]:
        print(f"    {1e3 * t['self_s']:8.1f} ms  x{t['calls']:<5d} {t['op']}")


def main(argv=None) -> int:
    p = cli.Parser(__file__, description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=cli.int_at_least(1), default=10)
    p.add_argument("--warmup", type=cli.int_at_least(0), default=5)
    cli.engine_options(p, workers=2, variants_default=VARIANTS, json_what="profiles")
    args, device = cli.parse_engine_args(p, argv)
    print(f"# device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.steps} profiled steps of batch 128 after {args.warmup} warm-up steps")
    data = fake_cifar10_lt()
    out = {"baseline": profile(baseline(data, device, args.steps, args.warmup,
                                        args.workers)[0], device, args.steps, args.warmup)}
    for variant in args.variants:
        out[f"engine {variant}"] = profile(engine(data, device, variant)[0], device,
                                           args.steps, args.warmup)
    for name, r in out.items():
        print_table(name, r)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
