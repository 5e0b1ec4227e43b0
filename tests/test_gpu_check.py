"""bench/gpu_check.py, the device check for a lent GPU machine, rehearsed on this CPU.

That machine has torch but no Ray, no Optuna, no analysis stack and no network: the rehearsal
runs the whole check end to end with tiny sizes in an environment where importing any of them
fails (a sitecustomize that blocks them, inherited by every step's subprocess), and a step
made to hang is killed with its whole process group at its limit while the earlier steps'
JSON stays."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
BLOCKED = ("ray", "optuna", "analysis", "study", "search_spaces", "umap", "sklearn")
BLOCKER = f"""
import importlib.abc, importlib.machinery, sys
class _Absent(importlib.abc.Loader):
    # found but not importable: importlib.util.find_spec (torch._dynamo probes with it) sees a
    # module, and any import of it fails as a missing package does
    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {{spec.name!r}} (not on the lent GPU "
                                  "machine)", name=spec.name)
    def exec_module(self, module):
        pass
class _NotOnTheLentMachine(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            return importlib.machinery.ModuleSpec(name, _Absent())
sys.meta_path.insert(0, _NotOnTheLentMachine())
"""


def bare_env(tmp_path) -> dict:
    """The lent machine as far as imports go: the project's own packages and torch only."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    return {**os.environ, "PYTHONPATH": str(site)}


def check(tmp_path, *extra, timeout=900):
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "bench/gpu_check.py", "--out", str(out), "--device",
                        "cpu", "--tiny", *extra], cwd=REPO, env=bare_env(tmp_path),
                       capture_output=True, text=True, timeout=timeout)
    return p, out


def test_the_blocker_blocks(tmp_path):
    p = subprocess.run([sys.executable, "-c", "import ray"], env=bare_env(tmp_path),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "No module named 'ray' (not on the lent GPU" in p.stderr


@pytest.mark.slow
def test_the_whole_check_runs_where_ray_and_optuna_cannot_be_imported(tmp_path):
    p, out = check(tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    steps = sorted((out / "steps").glob("[0-9][0-9].json"))
    records = [json.loads(s.read_text()) for s in steps]
    names = [r["name"] for r in records]
    assert names[0] == "CUDA tests" and names[-1] == "packs fp32" and len(names) == 7, names
    assert all(r["status"] == "ok" and r["result"] is not None for r in records[1:]), records
    # every result a step wrote is in its JSON, and the table comes last
    assert records[3]["result"]["resume"]["status"] == "ok"
    assert "img/s" in records[5]["detail"] and "K=2 pack" in records[6]["detail"]
    table = p.stdout[p.stdout.index("| step |"):]
    assert all(f"| {n} | ok |" in table for n in names) and "Table I on this card" in table
    assert (out / "summary.md").read_text().count("| ok |") == len(names)


@pytest.mark.slow
def test_a_hung_step_is_killed_with_its_group_and_earlier_results_stay(tmp_path):
    """The first trial hangs (a parent and its child sleeping): killed with its group at its
    limit, and the CUDA tests' JSON before it stays (--only: just those two steps)."""
    t = time.monotonic()
    p, out = check(tmp_path, "--only", "CUDA tests,trial fp32", "--hang-step", "trial fp32",
                   timeout=300)
    assert p.returncode == 1
    records = [json.loads(s.read_text()) for s in sorted((out / "steps").glob("[0-9]*.json"))]
    assert records[0]["name"] == "CUDA tests" and records[0]["status"] == "ok"   # kept
    assert records[1]["name"] == "trial fp32" and records[1]["status"] == "FAIL killed at 5s"
    child = int((out / "hang.pid").read_text())        # the hung step's own child: gone too
    assert not Path(f"/proc/{child}").exists() or \
        Path(f"/proc/{child}/stat").read_text().split()[2] == "Z"
    assert "| trial fp32 | FAIL killed at 5s |" in p.stdout
    assert len(records) == 2 and time.monotonic() - t < 120


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: gpu-check would run")
def test_without_cuda_it_exits_2_with_one_line(tmp_path):
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "bench/gpu_check.py", "--out", str(out)], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stdout == "" and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith("bench/gpu_check.py: error: no CUDA device"), p.stderr
    assert not out.exists()                          # nothing created


def test_make_gpu_check_runs_the_script():
    p = subprocess.run(["make", "-n", "gpu-check"], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and "bench/gpu_check.py" in p.stdout, p.stdout + p.stderr
