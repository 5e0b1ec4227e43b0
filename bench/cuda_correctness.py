"""Right on CUDA: the engine's results on a GPU checked against what they must equal.

    python bench/cuda_correctness.py [--device cuda] [--checks pack64,pack32,bf16,resume] [--json F]

- ``pack64`` / ``pack32``: a pack of 3 (CE, LDAM + DRW, ELM + DRW) against the same 3
  trials alone, their parameters after ``--steps`` steps, TF32 off, deterministic algorithms
  (CUBLAS_WORKSPACE_CONFIG set before CUDA starts). Expected: float64 equal to PACK_TOL
  (the CPU: exactly), fp32 within a loose bound (see PACK_TOL).
- ``bf16``: the ELM loss of the same model on the same batches, fp32 vs bf16 autocast with
  channels_last. Expected: relative difference <= BF16_TOL (bf16 keeps 8 bits of mantissa).
- ``resume``: 2 epochs uninterrupted vs 1 epoch, a checkpoint saved (``weights_only`` load),
  then epoch 2 resumed (a) on the same device: expected bit-identical under deterministic
  algorithms; (b) on the CPU from the CUDA checkpoint: expected to load and train, NOT to be
  equal (other kernels, and the loaders' generators live on the device, so a CPU generator
  seeded alike draws another batch order): reported as the difference.

Each check is one JSON entry (status ok / FAIL with the numbers), written as soon as it ends.
Nothing of Ray, Optuna or the analysis stack is imported (it runs with a bare torch >= 2.11).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")   # before CUDA initialises
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from bench import cli  # noqa: E402
from trainables.config import TrialConfig  # noqa: E402
from trainables.data.build import build_data  # noqa: E402
from trainables.engine import Trainer  # noqa: E402
from trainables.pack import PackTrainer  # noqa: E402

# pack vs alone: max parameter difference over the largest parameter change of the steps.
# float64: the equality check (the CPU gives exactly 0; tests/trainables/test_pack.py holds
# it to 1e-10). fp32: a sanity bound, not equality: grouped and separate convolutions round
# differently and 32 layers of BN amplify it (measured on a CPU, 2 steps: ~1e-2).
PACK_TOL = {torch.float64: 1e-9, torch.float32: 5e-2}
BF16_TOL = 2e-2       # relative loss difference, bf16 autocast vs fp32
BASE = dict(dataset="synthetic", ratio=10.0, batch_size=64, eval_batch_size=200, epochs=2,
            recipe_epochs=2, lr_milestones=(1,), lr_factors=(0.01,), warmup_epochs=0,
            channels_last=False)
METHODS = ({"loss": "ce"}, {"loss": "ldam", "drw": True}, {"loss": "elm", "lam": 0.5,
                                                             "drw": True})


def deterministic() -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True)


def params(model) -> dict:
    return {k: v.detach().float().cpu().clone() for k, v in model.state_dict().items()
            if v.is_floating_point()}


def max_diff(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def check_pack(device: torch.device, steps: int, dtype: torch.dtype) -> dict:
    """Max |Δ| of every member's parameters after ``steps`` steps, pack vs alone, relative to
    the largest change the steps made (so it reads the same at any learning rate)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        cfgs = [TrialConfig(**BASE, **m, seed=i, device=str(device))
                for i, m in enumerate(METHODS)]
        data = build_data(cfgs[0], device)
        alone, moved = [], []
        for cfg in cfgs:
            t = Trainer(cfg, device=device, data=data)
            t.forward = lambda x, t=t: t.model(x.to(dtype))      # the loader yields float32
            start = params(t.model)
            t.train_epoch(max_steps=steps)
            alone.append(params(t.model))
            moved.append(max_diff(start, alone[-1]))
        pack = PackTrainer(cfgs, device=device, data=data)
        pack.train_epoch(max_steps=steps)
        pack.sync()
    finally:
        torch.set_default_dtype(old)
    rel = [max_diff(alone[k], params(m.model)) / moved[k] for k, m in enumerate(pack.members)]
    tol = PACK_TOL[dtype]
    return {"status": "ok" if max(rel) <= tol else "FAIL", "steps": steps, "dtype": str(dtype),
            "max_param_diff_over_max_update": rel, "tolerance": tol}


def check_bf16(device: torch.device, batches: int) -> dict:
    cfg = TrialConfig(**BASE, loss="elm", lam=0.5, seed=0, device=str(device))
    fp32 = Trainer(cfg, device=device)
    bf16 = Trainer(cfg.replace(precision="bf16", channels_last=True), device=device)
    bf16.model.load_state_dict(fp32.model.state_dict())
    rel = []
    fp32.model.train(False)
    bf16.model.train(False)
    with torch.no_grad():
        for i, (x, y) in enumerate(fp32.train_loader):
            if i == batches:
                break
            a = fp32.criterion(fp32.forward(x)[0].float(), y)
            with bf16._autocast():
                b = bf16.criterion(bf16.forward(x.contiguous(memory_format=torch.channels_last))
                                   [0].float(), y)
            rel.append(float((a - b).abs() / a.abs().clamp_min(1e-12)))
    return {"status": "ok" if max(rel) <= BF16_TOL else "FAIL", "batches": len(rel),
            "max_rel_loss_diff": max(rel), "mean_rel_loss_diff": sum(rel) / len(rel),
            "tolerance": BF16_TOL}


def check_resume(device: torch.device) -> dict:
    cfg = TrialConfig(**BASE, loss="elm", lam=0.5, drw=True, seed=0, device=str(device))
    straight = Trainer(cfg, device=device)
    list(straight.epochs())
    want = params(straight.model)
    first = Trainer(cfg, device=device)
    next(iter(first.epochs()))
    path = Path(tempfile.mkdtemp(prefix="resume-")) / "epoch1.pt"
    first.save(path)
    out = {}
    for where in (device, torch.device("cpu")):
        again = Trainer(dataclasses.replace(cfg, device=str(where)), device=where)
        again.load(path)
        list(again.epochs())
        out[f"resumed_on_{where.type}_max_abs_diff"] = max_diff(want, params(again.model))
    same = out[f"resumed_on_{device.type}_max_abs_diff"]
    return {"status": "ok" if same == 0.0 else "FAIL", **out,
            "expected": "0 on the same device; the CPU resume only has to load and train"}


CHECKS = {"pack64": lambda d, a: check_pack(d, a.steps, torch.float64),
          "pack32": lambda d, a: check_pack(d, a.steps, torch.float32), "bf16": lambda d, a: check_bf16(d, 4),
          "resume": lambda d, a: check_resume(d)}


def main(argv=None) -> int:
    p = cli.Parser(__file__, description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--checks", default=",".join(CHECKS), help=f"some of {list(CHECKS)}")
    p.add_argument("--steps", type=cli.int_at_least(1), default=5)
    p.add_argument("--img-max", type=cli.int_at_least(10), default=100,
                   help="head-class size of the synthetic data (smaller: a quicker check)")
    p.add_argument("--json", help="write the results here as JSON (after each check)")
    args, device = p.parse_checked(argv)
    todo = [c.strip() for c in args.checks.split(",") if c.strip()]
    bad = [c for c in todo if c not in CHECKS]
    if bad:
        p.error(f"argument --checks: {bad[0]!r} is not a check; choose from {list(CHECKS)}")
    deterministic()
    BASE["img_max"] = args.img_max
    results = {}
    for name in todo:
        try:
            results[name] = CHECKS[name](device, args)
        except Exception as err:          # noqa: BLE001 -- one failing check is one entry
            results[name] = {"status": "FAIL", "error": f"{type(err).__name__}: {err}"[:300]}
        print(f"{name}: {json.dumps(results[name])}", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
    return 0 if all(r["status"] == "ok" for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
