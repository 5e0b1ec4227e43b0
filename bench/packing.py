"""Trial packs: aggregate train images/s of one trial, K separate trials, and one fused pack.

    python bench/packing.py [--device auto] [--ks 1,2,4,8,16] [--steps 20] [--warmup 3]
    python bench/packing.py --device cpu --ks 1,2,4 --steps 2 --warmup 1 --batch-size 64

For each K, in this one command: K separate processes training one trial each, started
together (as Ray runs K trials with fractional resources), and one process training a fused
pack of K (trainables/pack.py). Every trial is ResNet32 on CIFAR-10-LT-shaped random data
through the engine, members cycling ELM λ=0.5 + DRW, LDAM + DRW, CE + DRW with seed k. Rates
are aggregate train images/s; ratios are against one trial alone (separate, K=1) measured in
the same run. On CUDA also the peak GPU memory (summed over the separate processes). On CPU
each separate process gets cores/K threads (at least 1), the pack all of them.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import queue
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import cli  # noqa: E402

BARRIER_S = 600        # the slowest child's start-up and warm-up, at most
LOSSES = ({"loss": "elm", "lam": 0.5, "drw": True}, {"loss": "ldam", "drw": True},
          {"loss": "ce", "drw": True})


def configs(k: int, device: str, variant: str, batch_size: int) -> list:
    from trainables.config import TrialConfig
    return [TrialConfig(dataset="cifar10", seed=i, device=device, batch_size=batch_size,
                        precision="bf16" if "bf16" in variant else "fp32",
                        channels_last="channels_last" in variant, **LOSSES[i % len(LOSSES)])
            for i in range(k)]


def fake_data(device):
    import numpy as np
    import torch

    from bench.train_throughput import MEAN, STD, fake_cifar10_lt
    from trainables.data.build import TrialData
    from trainables.data.registry import get_dataset
    counts, x_train, y_train, x_test, y_test = fake_cifar10_lt()
    to = lambda a: torch.from_numpy(a).to(device)   # noqa: E731
    nchw = lambda a: to(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))   # noqa: E731
    return TrialData(train_x=nchw(x_train), train_y=to(y_train), val_x=None, val_y=None,
                     test_x=nchw(x_test), test_y=to(y_test), class_counts=list(counts),
                     num_classes=10, channels=3, mean=MEAN, std=STD,
                     info=get_dataset("cifar10"))


def _worker(role, cfgs, threads, steps, warmup, start, out):
    """One process: a Trainer (role 'trial', one config) or a PackTrainer ('pack')."""
    import torch
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(cfgs[0].device)
    data = fake_data(device)
    if role == "pack":
        from trainables.pack import PackTrainer
        trainer = PackTrainer(cfgs, device=device, data=data)
    else:
        from trainables.engine import Trainer
        trainer = Trainer(cfgs[0], device=device, data=data)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    if warmup:
        trainer.train_epoch(max_steps=warmup)     # oneDNN / cudnn choose their kernels
    if cuda:
        torch.cuda.synchronize(device)
    start.wait(timeout=BARRIER_S)                 # the K trials time the same interval
    t = time.perf_counter()
    trainer.train_epoch(max_steps=steps)
    if cuda:
        torch.cuda.synchronize(device)
    dt = time.perf_counter() - t
    mem = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    out.put((len(cfgs) * steps * cfgs[0].batch_size / dt, mem))


def run(role: str, cfgs: list, threads: int | None, steps: int, warmup: int,
        timeout_s: float) -> dict:
    """Aggregate images/s (and GPU GiB) of one pack process, or of len(cfgs) trial processes.
    Every wait is bounded: a child that dies (out of memory, a CUDA error) breaks the barrier
    or leaves the queue empty, and the others are killed instead of waiting forever; the
    children are daemons, so they end with this process."""
    ctx = mp.get_context("spawn")
    groups = [cfgs] if role == "pack" else [[c] for c in cfgs]
    start, out = ctx.Barrier(len(groups)), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(role, g, threads, steps, warmup, start, out),
                         daemon=True) for g in groups]
    for pr in procs:
        pr.start()
    deadline = time.monotonic() + timeout_s
    try:
        got = [out.get(timeout=max(1.0, deadline - time.monotonic())) for _ in procs]
    except queue.Empty:
        dead = [pr.exitcode for pr in procs if pr.exitcode not in (None, 0)]
        raise RuntimeError(f"{role} of {len(cfgs)}: no result within {timeout_s:.0f} s"
                           + (f" (a process exited with {dead[0]})" if dead else "")) from None
    finally:
        for pr in procs:
            pr.join(timeout=10)
            if pr.is_alive():
                pr.kill()
    mems = [m for _, m in got if m is not None]
    return {"images_per_s": sum(r for r, _ in got), "per_process": [r for r, _ in got],
            "gpu_gib": sum(mems) if mems else None}


def table(rows: dict, cuda: bool) -> str:
    """The printed table; adds each row's ratios against one trial alone (rows[1]) in place."""
    base = rows[1]["separate"]["images_per_s"]
    lines = [f"\n{'K':>3s} {'separate img/s':>15s} {'ratio':>6s} {'pack img/s':>11s} "
             f"{'ratio':>6s} {'pack/separate':>14s}" +
             (f" {'GiB sep':>8s} {'GiB pack':>9s}" if cuda else "")]
    for k, r in rows.items():
        s, pk = r["separate"], r["pack"]
        s["ratio_vs_one_trial"] = s["images_per_s"] / base
        pk["ratio_vs_one_trial"] = pk["images_per_s"] / base
        r["pack_vs_separate"] = pk["images_per_s"] / s["images_per_s"]
        lines.append(f"{k:3d} {s['images_per_s']:15.1f} {s['ratio_vs_one_trial']:5.2f}x "
                     f"{pk['images_per_s']:11.1f} {pk['ratio_vs_one_trial']:5.2f}x "
                     f"{r['pack_vs_separate']:13.2f}x" +
                     (f" {s['gpu_gib']:8.2f} {pk['gpu_gib']:9.2f}" if cuda else ""))
    return "\n".join(lines)


def _ks(text: str) -> list[int]:
    return [cli.int_at_least(1)(x) for x in text.split(",")]


def _one_variant(text: str) -> str:
    out = cli.variants(text)
    if len(out) != 1:
        raise argparse.ArgumentTypeError(f"takes one variant, got {len(out)}")
    return out[0]


def main(argv=None) -> int:
    p = cli.Parser(__file__, description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--ks", type=_ks, default="1,2,4,8,16",
                   help="pack sizes / numbers of separate trials, comma separated")
    p.add_argument("--steps", type=cli.int_at_least(1), default=20, help="timed steps")
    p.add_argument("--warmup", type=cli.int_at_least(0), default=3)
    p.add_argument("--batch-size", type=cli.int_at_least(1), default=128)
    p.add_argument("--variant", type=_one_variant, default=None,
                   help="fp32 or bf16, +channels_last (default: bf16+channels_last on CUDA, "
                        "fp32+channels_last on CPU)")
    p.add_argument("--timeout-s", type=cli.int_at_least(1), default=300,
                   help="the longest one measurement (K processes or one pack) may take")
    p.add_argument("--json", help="write the results here as JSON")
    args, device = p.parse_checked(argv)
    if args.variant and "compile" in args.variant:
        p.error("argument --variant: packs are not compiled (drop +compile)")
    import torch
    cuda = device.type == "cuda"
    variant = args.variant or ("bf16+channels_last" if cuda else "fp32+channels_last")
    cores = os.cpu_count() or 1
    machine = (f"{platform.node()}: {cores} CPU cores, "
               f"{torch.cuda.get_device_name(device) if cuda else 'no GPU'}, "
               f"torch {torch.__version__}, device {device}")
    print(f"# {machine}\n# {variant}, batch {args.batch_size}, {args.steps} timed steps after "
          f"{args.warmup} warm-up", flush=True)
    rows = {}
    for k in sorted({1, *args.ks}):   # K=1 alone is the baseline, always measured
        cfgs = configs(k, str(device), variant, args.batch_size)
        threads = None if cuda else max(1, cores // k)
        rows[k] = {"separate": run("trial", cfgs, threads, args.steps, args.warmup,
                                   args.timeout_s),
                   "pack": run("pack", cfgs, None, args.steps, args.warmup, args.timeout_s)}
        r = rows[k]
        print(f"K={k} measured: separate {r['separate']['images_per_s']:.0f} img/s, pack "
              f"{r['pack']['images_per_s']:.0f} img/s" + (
                  f", GiB {r['separate']['gpu_gib']:.2f} / {r['pack']['gpu_gib']:.2f}"
                  if cuda else ""), flush=True)
        if args.json:                 # saved as it goes: a kill at a limit keeps the Ks done
            Path(args.json).write_text(json.dumps({"variant": variant, "rows": rows}))
    base = rows[1]["separate"]["images_per_s"]
    print(table(rows, cuda))
    out = {"machine": machine, "variant": variant, "batch_size": args.batch_size,
           "steps": args.steps, "warmup": args.warmup,
           "baseline_one_trial_images_per_s": base, "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
