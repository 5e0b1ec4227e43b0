"""Data-parallel scaling of one ResNet-50 trial: training images/s at N = 1, 2, 4, 8 workers.

    python bench/ddp_scaling.py [--workers 1,2,4,8] [--steps 20] [--warmup 5] [--json out.json]

Each N runs the project's engine exactly as a ``workers_per_trial=N`` trial does (Trainer with
a trainables.dist.Dist hook: sharded global batch, DDP, all-reduced loss state), in N
local processes (torch.multiprocessing; NCCL, one GPU each). Ray is left out on purpose: it
only starts the workers, and this measures the steady-state step. The global batch stays
--batch (256, docs/recipe.md), so N workers each compute batch/N images per step (strong scaling, as
a trial). Images are synthetic uint8 tensors resident on each device (the file DataLoader is
not measured: see bench/train_throughput.py and docs/distributed.md for data-loading limits).

Without GPUs it runs N = 1, 2 with gloo at a tiny size (32 px, batch 16, few steps) and says
so: CPU numbers show that the path works, not what GPUs will do.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainables.config import TrialConfig  # noqa: E402
from trainables.data.build import TrialData  # noqa: E402
from trainables.data.registry import get_dataset  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", default=None, help="comma-separated N (default: 1,2,4,8 up "
                   "to the GPU count; 1,2 on CPU)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per N")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first")
    p.add_argument("--batch", type=int, default=None, help="global batch (default 256; 16 CPU)")
    p.add_argument("--image-size", type=int, default=None, help="default 224 (32 on CPU)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                   help="default bf16 on GPU, fp32 on CPU")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    gpus = torch.cuda.device_count()
    cpu = gpus == 0
    default_n = [1, 2] if cpu else [n for n in (1, 2, 4, 8) if n <= gpus]
    try:
        args.workers = [int(n) for n in args.workers.split(",")] if args.workers else default_n
    except ValueError:
        p.exit(2, f"--workers {args.workers!r}: want comma-separated integers, e.g. 1,2,4,8\n")
    if not cpu and max(args.workers) > gpus:
        p.exit(2, f"--workers {max(args.workers)} but this node has {gpus} GPU(s)\n")
    args.cpu = cpu
    args.steps = args.steps or (3 if cpu else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if cpu else 5)
    args.batch = args.batch or (16 if cpu else 256)
    args.image_size = args.image_size or (32 if cpu else 224)
    args.precision = args.precision or ("fp32" if cpu else "bf16")
    bad = [n for n in args.workers if n < 1 or args.batch % n]
    if bad:
        p.exit(2, f"--workers {bad}: the global batch {args.batch} must divide among them\n")
    return args


def synthetic_data(n_images: int, size: int, classes: int = 1000) -> TrialData:
    """uint8 images on the CPU (each worker moves them to its device), labels balanced."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n_images, 3, size, size), dtype=torch.uint8, generator=g)
    y = torch.arange(n_images) % classes
    info = get_dataset("synthetic")
    return TrialData(x, y, None, None, x[:8], y[:8], [max(1, int((y == c).sum()))
                     for c in range(classes)], classes, 3, (0.5,) * 3, (0.25,) * 3, info)


def worker(rank: int, world: int, port: int, args, out: str) -> None:
    import torch.distributed as tdist

    from trainables.dist import Dist
    from trainables.engine import Trainer
    dev = torch.device("cpu") if args.cpu else torch.device("cuda", rank)
    if not args.cpu:
        torch.cuda.set_device(dev)
    if world > 1:
        tdist.init_process_group("gloo" if args.cpu else "nccl", rank=rank, world_size=world,
                                 init_method=f"tcp://127.0.0.1:{port}")
    try:
        data = synthetic_data(args.batch * (args.steps + args.warmup), args.image_size)
        for name in ("train_x", "train_y", "test_x", "test_y"):
            setattr(data, name, getattr(data, name).to(dev))
        cfg = TrialConfig(dataset="synthetic", model="resnet50", batch_size=args.batch,
                          precision=args.precision, channels_last=not args.cpu,
                          device=str(dev), workers_per_trial=world, augment=False)
        trainer = Trainer(cfg, device=dev, data=data,
                          dist=Dist(device=dev) if world > 1 else None)
        trainer.train_epoch(max_steps=args.warmup)
        if not args.cpu:
            torch.cuda.synchronize()
        m = trainer.train_epoch(max_steps=args.steps)   # the next epoch's first steps
        if rank == 0:
            Path(out).write_text(json.dumps({"workers": world,
                                             "images_per_s": m["train_images_per_s"]}))
    finally:
        if world > 1:
            tdist.destroy_process_group()


def measure(n: int, args) -> dict:
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.json")
        if n == 1:   # plain single process: the workers_per_trial=1 path
            worker(0, 1, port, args, out)
        else:
            mp.spawn(worker, args=(n, port, args, out), nprocs=n, join=True)
        return json.loads(Path(out).read_text())


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.cpu:
        print("no GPU here: running N = 1, 2 with gloo on CPU at a tiny size (32 px, batch "
              f"{args.batch}); these numbers show the path works, not GPU scaling", flush=True)
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // max(args.workers)))
    rows = []
    for n in args.workers:
        r = measure(n, args)
        base = rows[0]["images_per_s"] if rows else r["images_per_s"]
        r["speedup"] = r["images_per_s"] / base
        r["efficiency"] = r["speedup"] / (n / args.workers[0])
        rows.append(r)
        print(f"N={n}: {r['images_per_s']:.1f} images/s, speed-up {r['speedup']:.2f}x, "
              f"efficiency {100 * r['efficiency']:.0f}%", flush=True)
    meta = {"device": "cpu" if args.cpu else torch.cuda.get_device_name(0),
            "gpus": torch.cuda.device_count(), "host": platform.node(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__,
            **{k: getattr(args, k) for k in ("steps", "warmup", "batch", "image_size",
                                              "precision")}}
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
