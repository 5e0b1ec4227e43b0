"""A GPU that torch cannot use is said in one line, not trained around on the CPU (issue 36).

On this GPU-less machine a loopback Ray cluster that claims one GPU (`ray start --num-gpus 1`)
stands for a node whose NVIDIA driver is too old for the installed torch: Ray schedules GPU
trials there and torch.cuda.is_available() is False. Before this check such a study exited 0
with every row saying "device": "cpu"."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from trainables.devices import cuda_unusable_reason, refuse_unusable_gpus

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine's torch can "
                                "use its GPU: there is no unusable GPU to refuse")


def test_holding_no_gpu_is_fine_and_holding_one_torch_cannot_use_is_one_line():
    refuse_unusable_gpus([])
    with pytest.raises(RuntimeError) as e:
        refuse_unusable_gpus(["0"])
    line = str(e.value)
    assert "\n" not in line and line.startswith("this trial holds GPU ['0'] but torch ")
    assert f"built for CUDA {torch.version.cuda}" in line and "driver" in line
    assert "Fix: install a torch built for a CUDA your driver supports" in line
    assert cuda_unusable_reason() in line


@pytest.mark.ray
def test_a_study_and_a_trial_on_a_node_whose_gpu_torch_cannot_use_are_refused(tmp_path):
    from raycluster import start_head, stop
    tmp, sids = tempfile.mkdtemp(prefix="rg", dir="/tmp"), set()
    try:
        head = start_head(tmp, sids, num_cpus=2, num_gpus=1)
        p = subprocess.run([sys.executable, "-m", "study", "run", "smoke", "--epochs", "1",
                            "--gpus-per-trial", "1", "--address", head["address"],
                            "--storage", str(tmp_path / "s")], env=head["env"], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
        err = [ln for ln in p.stderr.splitlines() if ln.startswith("elm-study: error")]
        assert p.returncode == 2 and len(err) == 1, p.stdout[-2000:] + p.stderr[-2000:]
        assert "Ray sees 1 GPU(s) on this node and each trial asks for 1" in err[0]
        assert "cannot use CUDA here" in err[0] and "Traceback" not in p.stderr
        assert not list((tmp_path / "s").rglob("result.json"))       # no trial ran
        # a trial the driver's check does not see (another node's GPU): Ray gives it the GPU's
        # id and the trial refuses at once, in the same words
        code = ("import ray, sys; ray.init(address=sys.argv[1])\n"
                "@ray.remote(num_gpus=1)\n"
                "def trial():\n"
                "    from trainables.devices import refuse_unusable_gpus\n"
                "    refuse_unusable_gpus(ray.get_gpu_ids())\n"
                "try:\n    ray.get(trial.remote())\nexcept Exception as e:\n"
                "    print('REFUSED', str(e).splitlines()[-1])")
        p = subprocess.run([sys.executable, "-c", code, head["address"]], env=head["env"],
                           cwd=REPO, capture_output=True, text=True, timeout=300)
        refused = [ln for ln in p.stdout.splitlines() if ln.startswith("REFUSED")]
        assert refused and "this trial holds GPU [0] but torch" in refused[0], p.stdout + p.stderr
    finally:
        stop(sids)
        shutil.rmtree(tmp, ignore_errors=True)
