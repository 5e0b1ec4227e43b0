"""What a trial cost (trainables/cost.py): device-seconds = wall time × the share of a device
held, kept in the checkpoint so that a resumed trial's cost includes its earlier attempts; a
pack's resources split evenly among its members. Small real trials on synthetic data; the Ray
layer's resources: tests/study/test_cost_study.py."""
import json
import time

import pytest
import torch

from trainables import run
from trainables.config import TrialConfig
from trainables.cost import CostMeter, hold_of
from trainables.engine import Trainer
from trainables.results import cost_totals

FLAGS = {"dataset": "synthetic", "ratio": "10", "img_max": "20", "epochs": "2",
         "batch_size": "32", "eval_every": "2", "eval_batch_size": "200", "device": "cpu"}


def cfg_of(flags=FLAGS) -> TrialConfig:
    return TrialConfig.from_dict({k: run.parse_value(k, v) for k, v in flags.items()})


def test_ray_resources_become_a_share_of_one_device_kind():
    assert hold_of({"CPU": 1.0, "GPU": 0.25}, "cuda") == ("gpu", 0.25)    # a fractional GPU
    assert hold_of({"CPU": 2.0, "GPU": 0.5}, "cuda", members=4) == ("gpu", 0.125)   # a pack
    assert hold_of({"CPU": 2.0}, "cpu", members=4) == ("cpu", 0.5)
    assert hold_of({"CPU": 1.0, "GPU": 1.0}, "cuda", workers=4) == ("gpu", 4.0)   # 4 workers
    assert hold_of({"cpu": 0.5, "gpu": 0.25}, "cpu") == ("cpu", 0.5)   # GPU held, CPU used


def test_the_meter_counts_each_interval_at_the_holding_of_its_time():
    meter = CostMeter("cpu")
    meter.hold("cpu", 0.5)
    time.sleep(0.05)
    a = meter.tick()
    meter.hold("gpu", 0.25)
    time.sleep(0.05)
    b = meter.tick()
    assert a["cost_cpu_s"] == pytest.approx(a["cost_wall_s"] * 0.5) and a["cost_gpu_s"] == 0
    assert b["cost_cpu_s"] == a["cost_cpu_s"]            # CPU- and GPU-seconds never mix
    assert b["cost_gpu_s"] == pytest.approx((b["cost_wall_s"] - a["cost_wall_s"]) * 0.25)
    with pytest.raises(ValueError, match="cost kind 'tpu'"):
        meter.hold("tpu", 1)


def test_a_resumed_trial_costs_its_first_attempt_too(tmp_path, capsys):
    """Attempt 1 trains epoch 1 and checkpoints; `python -m trainables.run --resume` trains
    epoch 2. Its rows and its last line count both attempts."""
    cfg = cfg_of()
    first = Trainer(cfg)
    m1 = next(first.epochs())
    first.save(tmp_path / "last.pt")
    assert m1["cost_attempts"] == 1 and m1["cost_kind"] == "cpu"
    assert m1["cost_cpu_s"] == pytest.approx(m1["cost_wall_s"] * torch.get_num_threads())
    t0 = time.monotonic()
    argv = [x for k, v in FLAGS.items() for x in (f"--{k.replace('_', '-')}", v)]
    assert run.main([*argv, "--resume", str(tmp_path / "last.pt"),
                     "--out", str(tmp_path / "out")]) == 0
    second = time.monotonic() - t0
    rows = [json.loads(x) for x in (tmp_path / "out" / run.METRICS_FILE).read_text()
            .splitlines()]
    last = rows[-1]
    assert last["epoch"] == 2 and last["cost_attempts"] == 2
    own = last["cost_wall_s"] - m1["cost_wall_s"]       # what attempt 2 added
    assert 0 < own <= second
    assert last["cost_cpu_s"] == pytest.approx(m1["cost_cpu_s"] + own * torch.get_num_threads())
    out = capsys.readouterr().out
    assert f"{last['cost_cpu_s']:.1f} CPU-s" in out and "2 attempts" in out
    assert f"data {last['data_fingerprint']}" in out
    assert cost_totals([m1, last])["cost_wall_s"] == last["cost_wall_s"]


def test_a_pack_splits_its_resources_evenly_among_its_members():
    from trainables.pack import PackTrainer
    cfgs = [cfg_of({**FLAGS, "epochs": "1"}).replace(seed=s) for s in (0, 1)]
    t0 = time.monotonic()
    pack = PackTrainer(cfgs)
    pack.hold("cpu", 2.0)
    rows = next(pack.epochs())
    wall = time.monotonic() - t0       # spans the meter's clock (construction to the tick)
    for r in rows:
        assert r["cost_share"] == 1.0 and r["cost_kind"] == "cpu"
        assert r["cost_cpu_s"] == pytest.approx(r["cost_wall_s"])
        assert r["data_fingerprint"] == pack.data.fingerprint
    # together, the pack's wall time (from its construction) times the 2 CPUs it held: at
    # least the epoch's training time, at most the time around construction and the epoch
    # (a bound on both sides that holds however loaded the machine is)
    total = sum(r["cost_cpu_s"] for r in rows)
    assert 2 * rows[0]["train_time_s"] <= total <= 2 * wall
    state = pack.members[0].state_dict()
    assert state["cost"]["cpu_s"] == rows[0]["cost_cpu_s"]
