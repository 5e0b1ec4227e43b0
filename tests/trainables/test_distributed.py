"""Data-parallel trials (trainables.dist, trainables.ray_layer.train_driver) on CPU with gloo.

The math is checked with the real engine in 2 local processes (torch.multiprocessing, gloo,
no Ray: fast); one real Tune study runs a 2-worker Ray Train trial next to a 1-worker one.
Tolerances (measured on this 2-core VM: worst 6.6e-5 after the first step, 4.8e-4 after
the next two; EQLv2 4e-8 and 1.7e-5): the parameter UPDATE of the 2-worker run equals the
1-process update to 1e-3 relative after one step and 2e-3 after three, per tensor. float32
gradient sums are added in another order over 2 workers, and with BN frozen at its initial
statistics the un-normalised ResNet amplifies that noise; a wrong loss weighting or a lost or
repeated sample changes an update by O(10%). EQLv2's accumulators: 1e-6 / 1e-4 relative.
Evaluation of the same model: accuracies and confusion matrix exactly, NLL/ECE to 1e-9.
"""
import math
import os
import socket

import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp

from trainables.config import TrialConfig
from trainables.data.large_scale import _EpochSampler, _ShardBatches
from trainables.data.loader import DeviceLoader, shard_slice
from trainables.engine import Trainer

# 403 training images: batch 402 gives a full step, then a 1-image step where rank 1's slice
# is empty (the hardest case of the loss weighting); eval batch 30 splits 200 test images
# unevenly.
DP = dict(dataset="synthetic", ratio=10.0, batch_size=402, eval_batch_size=30, epochs=1,
          device="cpu", loss="eqlv2", warmup_epochs=0, lr=1e-4)
# (a small lr: with BN frozen at its initial statistics the un-normalised ResNet's gradients
# are large, and a big step would make the comparison one of float noise amplified)


def _freeze_bn(model) -> None:
    """BN in eval mode for the comparison: per-worker BN statistics differ by design."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
            m.train = lambda mode=True, m=m: m   # model.train() must not switch it back


def _state(trainer) -> dict:
    return {"params": {k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
            "eql": {k: v.clone() for k, v in trainer.criterion.state_dict().items()}}


def _run(trainer) -> dict:
    """A sharded evaluation of the initial model (the same in both runs), one step, then a
    full epoch (a 402-image and a 1-image step)."""
    _freeze_bn(trainer.model)
    init = _state(trainer)
    evaluation = trainer.evaluate("test")
    confusion = trainer.confusion["test"]
    trainer.train_epoch(max_steps=1)
    one_step = _state(trainer)
    epoch = trainer.train_epoch()
    return {"init": init, "step": one_step, "epoch": _state(trainer), "train": epoch,
            "eval": evaluation, "confusion": confusion, "checkpoint": trainer.state_dict()}


def _worker(rank: int, world: int, port: int, out: str) -> None:
    from trainables.dist import Dist
    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                             world_size=world)
    try:
        cfg = TrialConfig(**DP, workers_per_trial=world)
        torch.save(_run(Trainer(cfg, dist=Dist())), f"{out}/rank{rank}.pt")
    finally:
        tdist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """The 2-worker run's results (rank 0 and 1) and the 1-process run's, same config."""
    out = tmp_path_factory.mktemp("dp")
    mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = _run(Trainer(TrialConfig(**DP)))
    finally:
        torch.set_num_threads(threads)
    return ranks, single


def _close(a: dict, b: dict, atol: float, rtol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].double(), b[k].double(), atol=atol, rtol=rtol), k


def test_two_worker_steps_equal_one_worker_steps_on_the_same_global_batch(two_workers):
    (r0, r1), single = two_workers
    p0 = single["init"]["params"]
    _close(r0["init"]["params"], p0, atol=0.0)
    for when, rel in (("step", 1e-3), ("epoch", 2e-3)):
        _close(r0[when]["params"], r1[when]["params"], atol=0.0)   # DDP keeps ranks identical
        for k, p in single[when]["params"].items():
            update = (p.double() - p0[k].double()).norm()
            err = (r0[when]["params"][k].double() - p.double()).norm()
            assert err <= rel * update + 1e-7, (when, k, float(err), float(update))
    assert math.isclose(r0["train"]["train_loss"], single["train"]["train_loss"], rel_tol=1e-5)
    assert r0["train"]["train_top1"] == single["train"]["train_top1"]


def test_eqlv2_state_after_two_worker_steps_equals_one_worker_state(two_workers):
    (r0, r1), single = two_workers
    for when, rtol in (("step", 1e-6), ("epoch", 1e-4)):
        for k, v in single[when]["eql"].items():   # pos_grad, neg_grad, pos_neg
            assert (r0[when]["eql"][k] - v).norm() <= rtol * v.norm(), (when, k)
        _close(r0[when]["eql"], r1[when]["eql"], atol=0.0)
    assert single["step"]["eql"]["pos_grad"].abs().sum() > 0


def test_sharded_evaluation_equals_single_process_evaluation(two_workers):
    (r0, r1), single = two_workers
    for k, v in single["eval"].items():
        if k.endswith("images_per_s"):
            continue
        if isinstance(v, float) and k.endswith(("nll", "ece")):
            assert math.isclose(r0["eval"][k], v, rel_tol=1e-9), k
        else:   # NaN: a shot group absent from the test split, in both
            assert _same(r0["eval"][k], v) and _same(r1["eval"][k], v), k
    assert r0["confusion"] == single["confusion"]


def _same(a, b) -> bool:
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


def test_two_worker_checkpoint_resumes_in_one_process(two_workers):
    (r0, _), single = two_workers
    resumed = Trainer(TrialConfig(**DP))       # workers_per_trial=1: a different N
    resumed.load_state_dict(r0["checkpoint"])
    _close(resumed.model.state_dict(), r0["epoch"]["params"], atol=0.0)


# ---- shards (no processes) -------------------------------------------------------------
def test_shard_slices_partition_every_batch_size():
    for world in (1, 2, 3, 8):
        for n in range(0, 20):
            parts = [shard_slice(n, (r, world)) for r in range(world)]
            assert [i for p in parts for i in range(n)[p]] == list(range(n))
            sizes = [p.stop - p.start for p in parts]
            assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("world", [2, 3])
def test_device_loader_shards_union_is_the_epoch_permutation(world):
    n, batch = 47, 10
    x = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 4, 4).contiguous()
    y = torch.arange(n)
    make = lambda shard: DeviceLoader(x, y, batch, (0.0,), (1.0,), augment=True,  # noqa: E731
                                      shuffle=True, seed=7, shard=shard)
    single = make(None)
    workers = [make((r, world)) for r in range(world)]
    for epoch in (0, 3):
        for ld in (single, *workers):
            ld.set_epoch(epoch)
        full = list(single)
        per_worker = [list(w) for w in workers]
        assert all(len(p) == len(full) == len(single) for p in per_worker)   # lockstep
        for step, (xb, yb) in enumerate(full):
            assert torch.equal(torch.cat([p[step][1] for p in per_worker]), yb)
            assert torch.equal(torch.cat([p[step][0] for p in per_worker]), xb)   # same crops
        assert all(w.global_batch == len(full[-1][1]) for w in workers)   # the last one's
        seen = torch.cat([yb for p in per_worker for _, yb in p])
        assert sorted(seen.tolist()) == list(range(n))                 # no repeats, no gaps
    assert not torch.equal(torch.cat([yb for _, yb in full]), y)       # it was shuffled


def test_file_loader_shards_union_is_the_epoch_permutation():
    n, batch, world = 23, 8, 2
    sampler = _EpochSampler(n, shuffle=True, seed=3)
    sampler.epoch = 2
    order = list(sampler)
    shards = [list(_ShardBatches(sampler, batch, (r, world))) for r in range(world)]
    for step, start in enumerate(range(0, n, batch)):
        assert shards[0][step] + shards[1][step] == order[start:start + batch]
    assert sorted(i for s in shards for b in s for i in b) == list(range(n))


def test_batch_size_that_does_not_divide_among_workers_is_refused():
    with pytest.raises(ValueError, match=r"batch_size=30 .*workers_per_trial=4"):
        TrialConfig(dataset="synthetic", batch_size=30, workers_per_trial=4)
    with pytest.raises(ValueError, match=r"workers_per_trial=0"):
        TrialConfig(dataset="synthetic", workers_per_trial=0)


def test_sync_bn_on_cpu_is_refused_with_a_clear_error():
    from trainables.dist import Dist
    with pytest.raises(ValueError, match="sync_bn=true needs GPUs"):
        Dist(rank=0, world=1).setup(torch.nn.BatchNorm2d(3), torch.nn.Module(), sync_bn=True)


def test_the_dispatcher_refuses_bad_worker_counts_and_packs_of_several_workers():
    from trainables.ray_layer.dispatch import trainable_for
    with pytest.raises(ValueError, match="workers_per_trial=0 is out of range"):
        trainable_for({"cpu": 1.0, "gpu": 0}, 0)
    with pytest.raises(ValueError, match="pack=0 is out of range"):
        trainable_for({"cpu": 1.0, "gpu": 0}, 1, pack=0)
    with pytest.raises(ValueError, match="pack=2 with workers_per_trial=2: a pack is one process"):
        trainable_for({"cpu": 1.0, "gpu": 0}, 2, pack=2)


# ---- a real Tune study with a 2-worker Ray Train trial ---------------------------------
STUDY = r'''
import json, sys
import ray
from ray import tune
from trainables.ray_layer.dispatch import trainable_for
ray.init(address="local", num_cpus=3, num_gpus=0, include_dashboard=False,
         object_store_memory=100 * 1024**2)
base = dict(dataset="synthetic", ratio=10.0, batch_size=64, eval_batch_size=100, epochs=3,
            device="cpu", checkpoint_every=1, loss="eqlv2")
rows = {}
for workers in (2, 1):   # the fault (env) fires once: in the 2-worker trial, which runs first
    trainable, cap = trainable_for({"cpu": 1.0, "gpu": 0}, workers)
    tuner = tune.Tuner(trainable, param_space={"base": {**base, "workers_per_trial": workers}},
                       tune_config=tune.TuneConfig(max_concurrent_trials=cap),
                       run_config=tune.RunConfig(name=f"n{workers}", storage_path=sys.argv[1],
                                                 failure_config=tune.FailureConfig(max_failures=1)))
    grid = tuner.fit()
    assert not grid.errors, grid.errors
    with open(f"{grid[0].path}/result.json") as f:
        rows[workers] = [json.loads(line) for line in f if line.strip()]
    rows[f"cap{workers}"] = cap
json.dump(rows, open(sys.argv[2], "w"), default=str)
'''


@pytest.mark.ray
@pytest.mark.slow   # ~140 s on the 2-core VM: Ray, two Train worker groups, one 1-worker trial
def test_two_worker_trial_in_a_tune_study_survives_a_sigkilled_worker(tmp_path):
    """A 2-worker trial in a real Tune study: rank 1 is SIGKILLed in the middle of epoch 2;
    Ray Train restarts both workers from epoch 1's checkpoint and the trial finishes, with
    result rows shaped like a 1-worker trial's (plus 'workers' and Train's checkpoint path)."""
    import json
    import subprocess
    import sys
    import tempfile
    marker, out = tmp_path / "killed", tmp_path / "rows.json"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1",
           "RAY_TMPDIR": tempfile.mkdtemp(prefix="rt", dir="/tmp"),
           "ELM_INJECT_FAULT": f"1:{marker}:kill-mid"}
    p = subprocess.run([sys.executable, "-c", STUDY, str(tmp_path / "study"), str(out)],
                       env=env, capture_output=True, text=True, timeout=400)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert marker.read_text() == "rank 1"                      # the fault did fire
    rows = json.loads(out.read_text())
    two, one = rows["2"], rows["1"]
    assert [r["epoch"] for r in two] == [1, 2, 3] == [r["epoch"] for r in one]
    assert [r["resumed_from_epoch"] for r in two] == [0, 1, 1]   # restarted from epoch 1
    assert two[-1]["status"] == "finished" and two[-1]["workers"] == 2
    extra = {"workers", "checkpoint_path"}
    engine_keys = {k for k in one[-1] if not k.startswith(("config/", "time", "pid", "hostname",
                                                             "node_ip", "date", "timestamp",
                                                             "iterations", "training_iter"))}
    assert engine_keys - {"checkpoint_dir_name", "should_checkpoint"} <= set(two[-1])
    assert (set(two[-1]) - set(one[-1])) <= extra | {"checkpoint_dir_name"}
    assert len(two[-1]["test_per_class"]) == len(one[-1]["test_per_class"])
    assert rows["cap2"] == 1 and rows["cap1"] is None


def test_file_loader_worker_slices_rebuild_each_batch_and_stay_in_lockstep(tmp_path):
    """9 tiny images, batch 4, 3 workers: the last global batch (1 image) leaves two workers
    an empty batch, which they still yield so every worker takes the same number of steps."""
    import numpy as np
    from PIL import Image

    from trainables.data.large_scale import FileLoader, ListDataset, SplitList, build_transforms
    paths = []
    for i in range(9):
        Image.fromarray(np.full((20, 20, 3), i * 20, np.uint8)).save(tmp_path / f"{i}.png")
        paths.append(f"{i}.png")
    ds = ListDataset(SplitList("t", paths, list(range(9))), tmp_path, build_transforms(16, False))
    kw = dict(shuffle=True, seed=1, num_workers=0, device="cpu", image_size=16)
    loaders = [FileLoader(ds, 4, **kw)] + [FileLoader(ds, 4, shard=(r, 3), **kw) for r in range(3)]
    for ld in loaders:
        ld.set_epoch(2)
    full, *shards = [[(x, y.tolist()) for x, y in ld] for ld in loaders]
    assert [len(s) for s in shards] == [len(full)] * 3 == [3] * 3
    for k, (x, y) in enumerate(full):
        assert sum((s[k][1] for s in shards), []) == y
        assert torch.equal(torch.cat([s[k][0] for s in shards]), x)   # eval transforms
    assert [s[-1][0].shape[0] for s in shards] == [1, 0, 0]
