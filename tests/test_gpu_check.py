"""`make gpu-check` on a machine without CUDA: exit 2, one line, nothing else run."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: gpu-check would run")
def test_gpu_check_without_cuda_exits_2_with_one_line(tmp_path):
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "bench/gpu_check.py", "--out", str(out)], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stdout == "" and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith("gpu-check: error: no CUDA device"), p.stderr
    assert not out.exists()                          # nothing created


def test_make_gpu_check_runs_the_script():
    p = subprocess.run(["make", "-n", "gpu-check"], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and "bench/gpu_check.py" in p.stdout, p.stdout + p.stderr
