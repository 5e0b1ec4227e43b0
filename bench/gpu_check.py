"""GPU check: everything the project does only on CUDA, in one command (`make gpu-check`).

    python bench/gpu_check.py [--out DIR] [--budget-s 570]

Run it whenever a machine with a GPU is available; the GPU path is otherwise untested. Steps,
each a subprocess with its own time limit so one hang cannot eat the others' time:

1. the CUDA-only tests (`pytest -k cuda`: tests named ``*cuda*`` or marked ``cuda``);
2. a short real trial on ``cuda`` (synthetic CIFAR-shaped data, ResNet32, ELM + DRW) in each
   precision: fp32, bf16 + channels_last, bf16 + channels_last + torch.compile;
3. ``bench/train_throughput.py --json`` (engine variants vs the reference loop);
4. ``bench/packing.py`` (1, 2, 4 trials sharing the GPU: K separate processes and one fused
   pack of K, trainables/pack.py).

Prints one summary table; exits 0 if every step passed, 1 otherwise, and 2 with one line when
there is no CUDA device. JSON outputs and logs go to ``--out`` (default: a new temp folder).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROG = "gpu-check"
# precision -> (flags, seconds allowed: torch.compile alone takes ~30-60 s)
TRIALS = {"fp32": (["--precision", "fp32", "--no-channels-last"], 60),
          "bf16+channels_last": (["--precision", "bf16", "--channels-last"], 60),
          "bf16+channels_last+compile": (["--precision", "bf16", "--channels-last",
                                          "--compile"], 120)}
# seconds per step: with the trials' 240 the sum is 580 s, under the 10 minutes promised
LIMITS = {"tests": 100, "throughput": 150, "packing": 90}


def run_step(cmd: list[str], log: Path, limit: float) -> tuple[str, float, str]:
    """(status, seconds, last output line) of ``cmd``; output goes to ``log``."""
    t = time.monotonic()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as fh:
        try:
            rc = subprocess.run(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                timeout=limit).returncode
            status = "ok" if rc == 0 else f"FAIL rc={rc}"
        except subprocess.TimeoutExpired:
            status = f"FAIL timeout {limit:.0f}s"
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return status, time.monotonic() - t, lines[-1][:90] if lines else ""


def trial_summary(out: Path) -> str:
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines() if ln]
    m = rows[-1]
    return (f"top-1 {m.get('test_top1', float('nan')):.1f}, "
            f"{m.get('train_images_per_s', float('nan')):.0f} train img/s (last epoch), "
            f"channels_last_used={m.get('channels_last_used')}")


def throughput_summary(path: Path) -> str:
    rows = json.loads(path.read_text())["variants"]
    return "; ".join(f"{k.replace('engine ', '')} {v['train_images_per_s']:.0f} "
                     f"({v['train_ratio_vs_baseline']:.2f}x)" for k, v in rows.items())


def packing_summary(path: Path) -> str:
    rows = json.loads(path.read_text())["rows"]
    return "; ".join(f"K={k} separate {v['separate']['ratio_vs_one_trial']:.2f}x, pack "
                     f"{v['pack']['ratio_vs_one_trial']:.2f}x" for k, v in rows.items())


def steps(out: Path) -> list[tuple[str, list[str], float, object]]:
    py = sys.executable
    todo = [("CUDA-only tests", [py, "-m", "pytest", "-q", "-k", "cuda", "-p",
                                 "no:cacheprovider", "tests"], LIMITS["tests"], None)]
    for name, (flags, limit) in TRIALS.items():
        d = out / f"trial_{name.replace('+', '_')}"
        todo.append((f"trial {name}",
                     [py, "-m", "trainables.run", "--dataset", "synthetic", "--ratio", "10",
                      "--loss", "elm", "--lam", "0.5", "--drw", "--epochs", "3",
                      "--batch-size", "128", "--device", "cuda", "--out", str(d), *flags],
                     limit, lambda d=d: trial_summary(d)))
    tj, pj = out / "train_throughput.json", out / "packing.json"
    todo.append(("bench/train_throughput.py", [py, "bench/train_throughput.py", "--device",
                                               "cuda", "--json", str(tj)],
                 LIMITS["throughput"], lambda: throughput_summary(tj)))
    todo.append(("bench/packing.py", [py, "bench/packing.py", "--device", "cuda", "--steps",
                                      "50", "--ks", "1,2,4", "--json", str(pj)],
                 LIMITS["packing"],
                 lambda: packing_summary(pj)))
    return todo


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="folder for logs and JSON results (default: a temp folder)")
    args = p.parse_args(argv)
    import torch
    if not torch.cuda.is_available():
        print(f"{PROG}: error: no CUDA device (torch.cuda.is_available() is False); run it "
              "on a machine with a GPU", file=sys.stderr)
        return 2
    out = Path(args.out or tempfile.mkdtemp(prefix="gpu-check-"))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"{PROG}: error: cannot create --out {out}: {e.strerror}", file=sys.stderr)
        return 2
    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}; logs in {out}",
          flush=True)
    results = []
    for i, (name, cmd, limit, summarise) in enumerate(steps(out)):
        status, secs, last = run_step(cmd, out / f"step{i}.log", limit)
        detail = last
        if status == "ok" and summarise is not None:
            try:
                detail = summarise()
            except (OSError, ValueError, KeyError) as e:   # ran, but wrote no usable result
                status, detail = "FAIL", f"no result: {e}"
        results.append((name, status, secs, detail))
        print(f"{name}: {status} ({secs:.0f} s)", flush=True)
    print(f"\n{'step':30s} {'status':18s} {'time':>6s}  detail")
    for name, status, secs, detail in results:
        print(f"{name:30s} {status:18s} {secs:5.0f}s  {detail}")
    return 0 if all(r[1] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
