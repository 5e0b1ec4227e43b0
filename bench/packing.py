"""GPU packing: aggregate throughput of k = 1, 2, 4, 8 concurrent trials on one GPU.

    python bench/packing.py [--steps 200] [--ks 1,2,4,8]

Each trial is a separate process (as Ray's fractional GPUs run them) training ResNet32 + LDAM
with DRW on CIFAR-10-LT-shaped data through the engine. Prints images/s per k and the ratio to
k = 1; use it to choose ``--gpus-per-trial`` (0.25 = four trials per GPU). Needs CUDA.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _cli  # noqa: E402


def _trial(steps: int, variant: str, start, out):
    import torch

    from bench.train_throughput import engine, fake_cifar10_lt
    device = torch.device("cuda")
    train_steps, _, _ = engine(fake_cifar10_lt(), device, variant)
    train_steps(20)                      # warm-up (cudnn autotune, compile)
    torch.cuda.synchronize()
    start.wait()                         # all k trials start timing together
    t = time.perf_counter()
    train_steps(steps)
    torch.cuda.synchronize()
    out.put(steps * 128 / (time.perf_counter() - t))


def _ks(text: str) -> list[int]:
    return [_cli.int_at_least(1)(x) for x in text.split(",")]


def _one_variant(text: str) -> str:
    out = _cli.variants(text)
    if len(out) != 1:
        raise argparse.ArgumentTypeError(f"takes one variant, got {len(out)}")
    return out[0]


def main(argv=None) -> int:
    p = _cli.Parser(__file__, description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=_cli.int_at_least(1), default=200)
    p.add_argument("--ks", type=_ks, default="1,2,4,8",
                   help="numbers of concurrent trials, comma separated")
    p.add_argument("--variant", type=_one_variant, default="bf16+channels_last")
    p.add_argument("--json", help="write the results here as JSON")
    args = p.parse_args(argv)
    _cli.writable(p, args.json)
    import torch
    if not torch.cuda.is_available():
        print("bench/packing.py needs a CUDA GPU; none here.")
        return 0
    ctx = mp.get_context("spawn")
    rows = {}
    for k in args.ks:
        start, out = ctx.Barrier(k), ctx.Queue()
        procs = [ctx.Process(target=_trial, args=(args.steps, args.variant, start, out))
                 for _ in range(k)]
        for pr in procs:
            pr.start()
        rates = [out.get() for _ in procs]
        for pr in procs:
            pr.join()
        rows[k] = {"aggregate_images_per_s": sum(rates), "per_trial": rates}
    base = rows[min(rows)]["aggregate_images_per_s"]
    print(f"# {torch.cuda.get_device_name()}  variant {args.variant}  {args.steps} steps")
    for k, r in rows.items():
        r["ratio_vs_1"] = r["aggregate_images_per_s"] / base
        print(f"k={k}: {r['aggregate_images_per_s']:9.0f} img/s aggregate  "
              f"({r['ratio_vs_1']:.2f}x k=1)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
