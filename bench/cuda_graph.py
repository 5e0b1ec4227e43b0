"""Is a ResNet32 training step launch-bound? Eager vs the same step captured in a CUDA graph.

    python bench/cuda_graph.py [--device cuda] [--batch-size 128] [--ks 1,4] [--json out.json]

A ResNet32 step is ~450 kernel launches for about a millisecond of H100 arithmetic, so the
CPU's launch overhead may bound one trial and a pack (issue 36). This measures it before the
engine is changed for it: the same forward + LDAM loss + backward + SGD-with-momentum step,
eager and replayed from one ``torch.cuda.CUDAGraph`` (static input and target tensors, the
learning rate a device tensor so a schedule could change it without re-capture, the update
written with foreach ops that never read a value back to the host). K > 1: the fused pack of K
backbones (trainables/models/fused_cifar.py) with K heads, one batch of K·3 channels.
Timed with CUDA events over ``--steps`` steps after ``--warmup``; ratio = graph / eager
images/s, in this one process. On a CPU only the eager rows run (graphs are CUDA's).

Nothing of Ray, Optuna or the analysis stack is imported (it runs with a bare torch >= 2.11).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from bench import cli  # noqa: E402
from trainables.data.imbalance import class_counts  # noqa: E402
from trainables.losses import create_loss  # noqa: E402
from trainables.models import create_model  # noqa: E402
from trainables.models.fused_cifar import fuse  # noqa: E402

MOMENTUM, WEIGHT_DECAY = 0.9, 2e-4


class Step:
    """One training step of K ResNet32s (K = 1: the plain model), its SGD state on device."""

    def __init__(self, k: int, batch: int, device: torch.device):
        counts = class_counts(10, 5000, "lt", 100)
        members = [create_model("resnet32", 10).to(device) for _ in range(k)]
        self.backbone = fuse(members) if k > 1 else members[0]
        self.heads = [m.linear for m in members] if k > 1 else []
        self.k, self.loss = k, create_loss("ldam", counts).to(device)
        self.params = [p for m in [self.backbone, *self.heads] for p in m.parameters()]
        self.bufs = [torch.zeros_like(p) for p in self.params]
        self.lr = torch.tensor(0.1, device=device)            # a tensor: no re-capture per LR
        gen = torch.Generator(device="cpu").manual_seed(0)
        self.x = torch.randn(batch, 3 * k, 32, 32, generator=gen).to(device)
        self.y = torch.randint(0, 10, (batch,), generator=gen).to(device)

    def __call__(self) -> None:
        if self.k == 1:
            logits, _ = self.backbone(self.x)
            loss = self.loss(logits, self.y)
        else:                                  # (N, K, 64) -> each member's head and loss
            feats = self.backbone(self.x)
            loss = sum(self.loss(h(feats[:, j]), self.y) for j, h in enumerate(self.heads))
        grads = torch.autograd.grad(loss, self.params)
        with torch.no_grad():                  # SGD + momentum + weight decay, foreach, no sync
            grads = torch._foreach_add(grads, self.params, alpha=WEIGHT_DECAY)
            torch._foreach_mul_(self.bufs, MOMENTUM)
            torch._foreach_add_(self.bufs, grads)
            torch._foreach_sub_(self.params, torch._foreach_mul(self.bufs, self.lr))


def timed(fn, steps: int, device: torch.device) -> float:
    """Seconds per call: CUDA events on a GPU, the wall clock on a CPU."""
    if device.type != "cuda":
        t = time.perf_counter()
        for _ in range(steps):
            fn()
        return (time.perf_counter() - t) / steps
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(steps):
        fn()
    end.record()
    torch.cuda.synchronize(device)
    return start.elapsed_time(end) / 1000 / steps


def captured(step: Step, warmup: int, device: torch.device):
    """The step as a replayable CUDA graph (warm-up on a side stream, as PyTorch's docs ask)."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(max(warmup, 3)):
            step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def measure(k: int, batch: int, steps: int, warmup: int, device: torch.device) -> dict:
    row = {"k": k, "batch": batch}
    step = Step(k, batch, device)
    for _ in range(warmup):
        step()
    row["eager_images_per_s"] = k * batch / timed(step, steps, device)
    if device.type == "cuda":
        replay = captured(Step(k, batch, device), warmup, device)
        row["graph_images_per_s"] = k * batch / timed(replay, steps, device)
        row["graph_vs_eager"] = row["graph_images_per_s"] / row["eager_images_per_s"]
        row["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return row


def main(argv=None) -> int:
    p = cli.Parser(__file__, description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=cli.int_at_least(1), default=128)
    p.add_argument("--ks", default="1,4", help="1 = one ResNet32; K > 1 = a fused pack of K")
    p.add_argument("--steps", type=cli.int_at_least(1), default=100)
    p.add_argument("--warmup", type=cli.int_at_least(0), default=10)
    p.add_argument("--json", help="write the rows here as JSON (after each row)")
    args, device = p.parse_checked(argv)
    try:
        ks = [cli.int_at_least(1)(x) for x in args.ks.split(",")]
    except argparse.ArgumentTypeError as e:
        p.error(f"argument --ks: {e}")
    torch.backends.cudnn.benchmark = True
    what = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"# {what}, torch {torch.__version__}; batch {args.batch_size}, {args.steps} steps "
          f"after {args.warmup}", flush=True)
    rows = []
    for k in ks:
        try:
            rows.append(measure(k, args.batch_size, args.steps, args.warmup, device))
        except Exception as err:          # noqa: BLE001 -- one failing K is one row
            rows.append({"k": k, "error": f"{type(err).__name__}: {err}"[:300]})
        r = rows[-1]
        print(f"K={k:3d} " + (r["error"] if "error" in r else
                              f"eager {r['eager_images_per_s']:9.0f} img/s" +
                              (f"  graph {r['graph_images_per_s']:9.0f} img/s  "
                               f"{r['graph_vs_eager']:.2f}x" if "graph_vs_eager" in r else
                               "  graph n/a (CUDA only)")), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps({"device": what, "rows": rows}, indent=1))
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
