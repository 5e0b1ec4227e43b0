"""Models, metrics and the training engine on the tiny synthetic dataset (real torch, CPU)."""
import json
import math

import pytest
import torch

from trainables.config import TrialConfig
from trainables.checkpoints import CheckpointError, load_checkpoint
from trainables.engine import Trainer
from trainables.losses import create_loss, drw_weights
from trainables.metrics import TopKAccumulator, shot_group_of
from trainables.models import NormedLinear, create_model

TINY = dict(dataset="synthetic", ratio=10.0, batch_size=32, eval_batch_size=100, epochs=3,
            device="cpu")


# ---- models ---------------------------------------------------------------------------
@pytest.mark.parametrize("classes, params", [(10, 464_154), (100, 470_004)])
def test_resnet32_parameter_count(classes, params):
    model = create_model("resnet32", classes, head="linear")
    assert sum(p.numel() for p in model.parameters()) == params


def test_resnet32_returns_logits_and_pooled_features_with_either_head():
    x = torch.randn(4, 1, 32, 32)
    for head in ("linear", "cosine"):
        model = create_model("resnet32", 7, in_channels=1, head=head)
        logits, feat = model(x)
        assert logits.shape == (4, 7) and feat.shape == (4, 64)
    assert isinstance(model.linear, NormedLinear)
    assert logits.abs().max() <= 1 + 1e-5      # cosine logits


def test_unknown_model_lists_choices():
    with pytest.raises(ValueError, match=r"unknown model 'vgg'; choose one of \['resnet32'"):
        create_model("vgg", 10)


# ---- metrics ---------------------------------------------------------------------------
def test_shot_groups_follow_spec_thresholds():
    assert shot_group_of([101, 100, 20, 19]) == ["many", "medium", "medium", "few"]


def test_topk_accumulator_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(300, 6, generator=g), torch.randint(0, 6, (300,), generator=g)
    acc = TopKAccumulator(6, "cpu")
    acc.update(logits[:100], y[:100])
    acc.update(logits[100:], y[100:])
    out = acc.summary([500, 300, 150, 50, 19, 5], prefix="t_")
    rank = (logits > logits.gather(1, y[:, None])).sum(1)       # 0 = top-1
    for k in (1, 3, 5):
        assert out[f"t_top{k}"] == pytest.approx(100 * (rank < k).float().mean().item())
    per_class = [100 * (rank[y == c] == 0).float().mean().item() for c in range(6)]
    assert out["t_per_class"] == pytest.approx(per_class)
    assert out["t_many"] == pytest.approx(sum(per_class[:3]) / 3)
    assert out["t_medium"] == pytest.approx(per_class[3])
    assert out["t_few"] == pytest.approx(sum(per_class[4:]) / 2)


def test_empty_shot_group_is_nan_not_zero():
    acc = TopKAccumulator(2, "cpu")
    acc.update(torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
    out = acc.summary([500, 400], prefix="")
    assert math.isnan(out["few"]) and math.isnan(out["medium"]) and out["many"] == 100.0   # class 1 has no test image: undefined, skipped


# ---- engine ----------------------------------------------------------------------------
def test_training_reports_every_epoch_and_learns():
    trainer = Trainer(TrialConfig(**TINY, loss="elm", lam=0.5, drw=True))
    ms = list(trainer.epochs())
    assert [m["epoch"] for m in ms] == [1, 2, 3]
    assert ms[-1]["status"] == "finished" and ms[-1]["done"]
    assert ms[-1]["test_top1"] > 20.0          # 10 classes: chance is 10 %
    for key in ("test_top3", "test_top5", "test_many", "test_medium", "test_few",
                "test_per_class", "train_loss", "train_images_per_s", "best_test_top1", "lr"):
        assert key in ms[-1]
    assert ms[-1]["best_test_top1"] == max(m["test_top1"] for m in ms)


def test_lr_and_drw_follow_the_scaled_schedule():
    cfg = TrialConfig(**{**TINY, "epochs": 10}, loss="ldam", drw=True)
    trainer = Trainer(cfg)
    drw_epoch = cfg.schedule()["drw_epoch"]                      # 160/200 * 10 = 8
    assert drw_epoch == 8
    for epoch in range(10):
        lr = trainer._start_epoch(epoch)
        assert lr == pytest.approx(cfg.lr_at(epoch))
        assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(lr)
        w = trainer.criterion.weight
        expect = drw_weights(trainer.data.class_counts, epoch, drw_epoch)
        torch.testing.assert_close(w, expect)
        assert bool((w == 1).all()) == (epoch < drw_epoch)


def test_resume_from_checkpoint_is_bit_identical(tmp_path):
    cfg = TrialConfig(**{**TINY, "epochs": 4}, loss="eqlv2")   # eqlv2: loss state too
    full = Trainer(cfg)
    full_metrics = list(full.epochs())

    first = Trainer(cfg)
    for m in first.epochs():
        if m["epoch"] == 2:
            first.save(tmp_path / "ck.pt")
            break
    torch.manual_seed(1234)        # disturb the global RNG: resume must restore it
    resumed = Trainer(cfg)
    resumed.load(tmp_path / "ck.pt")
    rest = list(resumed.epochs())
    assert [m["epoch"] for m in rest] == [3, 4]
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    for k, v in full.criterion.state_dict().items():
        assert torch.equal(v, resumed.criterion.state_dict()[k]), k
    for a, b in zip(full_metrics[2:], rest):
        assert a["train_loss"] == b["train_loss"] and a["test_top1"] == b["test_top1"]


def test_checkpoint_loads_with_weights_only_and_rejects_garbage(tmp_path):
    trainer = Trainer(TrialConfig(**{**TINY, "epochs": 1}))
    trainer.fit()
    trainer.save(tmp_path / "ok.pt")
    state = torch.load(tmp_path / "ok.pt", weights_only=True)
    assert TrialConfig.from_dict(state["config"]) == trainer.cfg and state["epoch"] == 1
    data = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt is unreadable"):
        load_checkpoint(tmp_path / "cut.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    other = Trainer(TrialConfig(**{**TINY, "epochs": 1}, seed=5))
    with pytest.raises(CheckpointError, match="different trial config"):
        other.load(tmp_path / "ok.pt")


def test_diverging_run_ends_with_status_diverged():
    trainer = Trainer(TrialConfig(**{**TINY, "epochs": 5}, lr=1e12, warmup_epochs=0))
    ms = list(trainer.epochs())
    assert ms[-1]["status"] == "diverged" and ms[-1]["done"]
    assert trainer.status == "diverged" and len(ms) < 5


def test_bf16_and_channels_last_run():
    trainer = Trainer(TrialConfig(**{**TINY, "epochs": 1}, precision="bf16", channels_last=True,
                                  loss="ldam"))
    m = trainer.fit()
    assert m["status"] == "finished" and math.isfinite(m["train_loss"])


# ---- the run CLI -----------------------------------------------------------------------
def test_run_cli_trains_writes_and_resumes(tmp_path, capsys):
    from trainables.run import main
    args = ["--dataset", "synthetic", "--ratio", "10", "--batch-size", "32", "--epochs", "2",
            "--loss", "elm", "--lam", "0.5", "--drw", "--device", "cpu", "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "epoch   2" in out and "many" in out and "final top1" in out
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["epoch"] for ln in lines] == [1, 2]
    assert json.loads((tmp_path / "config.json").read_text())["loss.lam"] == 0.5
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["epoch"] == 2 and state["status"] == "finished"


def test_run_cli_bad_flag_exits_2(capsys):
    from trainables.run import main
    with pytest.raises(SystemExit) as e:
        main(["--loss", "elm", "--lam", "-1"])
    assert e.value.code == 2
    assert "lam=-1.0 is out of range" in capsys.readouterr().err


# ---- the speed comparison is like for like (bench/train_throughput.py) ------------------
def test_engine_first_batch_loss_equals_the_reference_computation():
    """Same seed, same batch: the engine's first-step loss equals LDAM-DRW's reference step
    (eager model, LDAM with DRW weights), so speed does not come from computing less."""
    cfg = TrialConfig(**{**TINY, "epochs": 200}, loss="ldam", drw=True)
    trainer = Trainer(cfg)
    trainer.epoch = 160                                   # DRW on
    trainer._start_epoch(160)
    x, y = next(iter(trainer.train_loader))               # the engine's first batch
    torch.manual_seed(cfg.seed)                           # the reference: same init
    model = create_model("resnet32", 10, head="cosine")
    crit = create_loss("ldam", trainer.data.class_counts)
    crit.set_weight(drw_weights(trainer.data.class_counts, 160, 160))
    ref = crit(model(x)[0], y).item()
    got = trainer.train_epoch(max_steps=1)["train_loss"]
    assert got == pytest.approx(ref, rel=1e-6)


def test_device_normalisation_equals_torchvision_totensor_normalize():
    import torchvision.transforms as T
    from PIL import Image
    from trainables.data.loader import DeviceLoader
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (4, 3, 32, 32), generator=g, dtype=torch.uint8)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
    ours = next(iter(DeviceLoader(x, torch.arange(4), 4, mean, std, augment=False,
                                  shuffle=False)))[0]
    tf = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
    ref = torch.stack([tf(Image.fromarray(img.permute(1, 2, 0).numpy())) for img in x])
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
