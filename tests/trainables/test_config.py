"""TrialConfig: round trip, parsing, and one clear error per bad input."""
import json

import pytest

from trainables.config import TrialConfig, parse_value


def test_round_trip_through_json():
    cfg = TrialConfig(dataset="cifar100", loss="elm", lam=0.5, drw=True, ratio=10,
                      lr_milestones=(50, 70, 85), lr_factors=(0.1, 0.01, 0.001), epochs=90,
                      recipe_epochs=90)
    back = TrialConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    assert back.lr_milestones == (50, 70, 85)


def test_int_accepted_for_float_and_kept_as_float():
    cfg = TrialConfig.from_dict({"ratio": 100, "loss": "ldam", "s": 30})
    assert isinstance(cfg.ratio, float) and isinstance(cfg.s, float)


@pytest.mark.parametrize("changes, match", [
    ({"ratio": 0.5}, r"ratio=0\.5 is out of range: must be >= 1"),
    ({"loss": "ldam", "s": 0.0}, r"s=0\.0 is out of range: must be > 0"),
    ({"loss": "ldam", "s": -3.0}, r"s=-3\.0 is out of range"),
    ({"loss": "ldam", "max_m": -0.1}, r"max_m=-0\.1 is out of range: must be >= 0"),
    ({"loss": "elm", "lam": -1.0}, r"lam=-1\.0 is out of range: must be >= 0"),
    ({"loss": "elm", "lam": float("nan")}, r"lam=nan is out of range"),
    ({"loss": "nope"}, r"loss='nope' is not valid; choose one of \[.*'ce'.*'elm'.*\]"),
    ({"dataset": "mnist"}, r"dataset='mnist' is not valid; choose one of \[.*'cifar10'.*\]"),
    ({"imb_type": "exp"}, r"imb_type='exp' is not valid; choose one of \['lt', 'step'\]"),
    ({"precision": "fp16"}, r"precision='fp16' is not valid; choose one of \['bf16', 'fp32'\]"),
    ({"model": "vgg"}, r"model='vgg' is not valid; choose one of \[.*'resnet32'.*\]"),
    ({"head": "mlp"}, r"head='mlp' is not valid"),
    ({"device": "gpu0"}, r"device='gpu0' is not valid"),
    ({"epochs": 0}, r"epochs=0 is out of range"),
    ({"val_fraction": 1.0}, r"val_fraction=1\.0 is out of range"),
    ({"lam": 0.5}, r"lam does not apply to loss 'ce'; it takes no hyper-parameters"),
    ({"loss": "focal", "s": 10.0}, r"s does not apply to loss 'focal'; it takes \['gamma'\]"),
    ({"loss": "eqlv2", "drw": True}, r"drw does not apply to loss 'eqlv2'"),
    ({"lr_milestones": (10,)}, r"lr_factors=.* needs one factor per milestone"),
    ({"lr_milestones": (20, 10)}, r"lr_milestones=.* must be ascending"),
])
def test_bad_values_name_the_field(changes, match):
    with pytest.raises(ValueError, match=match):
        TrialConfig.from_dict(changes)


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['lamda'\]; valid keys: .*'lam'"):
        TrialConfig.from_dict({"lamda": 0.5})


@pytest.mark.parametrize("key, value, match", [
    ("ratio", "ten", r"'ratio' expects float, got str 'ten'"),
    ("epochs", 2.5, r"'epochs' expects int, got float 2\.5"),
    ("drw", "yes", r"'drw' expects bool, got str"),
    ("seed", True, r"'seed' expects int, got bool"),
    ("loss", 3, r"'loss' expects str, got int"),
])
def test_wrong_types_rejected(key, value, match):
    with pytest.raises(ValueError, match=match):
        TrialConfig.from_dict({key: value})


def test_direct_construction_is_validated_too():
    with pytest.raises(ValueError, match="ratio"):
        TrialConfig(ratio="100")


def test_parse_value_types_and_errors():
    assert parse_value("lam", "0.5") == 0.5
    assert parse_value("drw", "true") is True
    assert parse_value("epochs", "20") == 20
    assert parse_value("lam", "none") is None
    assert parse_value("lr_milestones", "50,70,85") == (50, 70, 85)
    with pytest.raises(ValueError, match=r"config key 'lam' expects None or float, got 'abc'"):
        parse_value("lam", "abc")
    with pytest.raises(ValueError, match=r"unknown config key 'lamb'"):
        parse_value("lamb", "1")


def test_loss_hparams_merge_defaults_and_overrides():
    assert TrialConfig(loss="elm", lam=0.5).loss_hparams() == {"s": 30.0, "max_m": 0.5,
                                                                 "lam": 0.5}
    mm = TrialConfig(loss="mm_ldam").loss_hparams()
    assert (mm["s"], mm["max_m"], mm["gamma"], mm["ldam"]) == (19.0, 1.29, 1.528, False)
    assert TrialConfig(loss="ldam").resolved_head() == "cosine"
    assert TrialConfig(loss="ce").resolved_head() == "linear"


def test_lr_schedule_of_the_200_epoch_recipe():
    cfg = TrialConfig()
    # epochs are 1-based in docs/recipe.md: e <= 5 warm-up, 0.1 to 160, 1e-3 from 161, 1e-5 from 181
    lr = {e: cfg.lr_at(e - 1) for e in (1, 5, 6, 160, 161, 180, 181, 200)}
    assert lr[1] == pytest.approx(0.02) and lr[5] == pytest.approx(0.1)
    assert lr[6] == lr[160] == pytest.approx(0.1)
    assert lr[161] == lr[180] == pytest.approx(1e-3)
    assert lr[181] == lr[200] == pytest.approx(1e-5)
    assert cfg.schedule()["drw_epoch"] == 160


def test_shorter_runs_scale_milestones_drw_and_ib():
    cfg = TrialConfig(epochs=20, loss="ib")
    sch = cfg.schedule()
    assert sch["lr_milestones"] == [16, 18] and sch["drw_epoch"] == 16
    assert cfg.loss_hparams()["ib_start_epoch"] == 10
    assert TrialConfig(epochs=20, drw_epoch=100).schedule()["drw_epoch"] == 10
