"""ImageNet-LT / Places-LT: split lists, validation, ResNet-50, the recipe, a CLI epoch."""
import gzip

import pytest
import torch

from trainables.config import TrialConfig
from trainables.data.build import build_data, make_loaders
from trainables.data.large_scale import decode_batch, read_split_list, validate_split
from trainables.data.lt_splits import available, expected_sha256, sha256_of, shipped_list
from trainables.losses import create_loss
from trainables.metrics import shot_group_of
from trainables.models import create_model


@pytest.fixture(scope="module")
def tree(places_tree):          # tests/conftest.py: a tiny tree in Places-LT's real format
    return places_tree


def test_real_places_lt_train_list_statistics():
    split = read_split_list(shipped_list("Places_LT_train"))      # shipped, gzipped
    counts = split.counts(365)
    assert len(split.paths) == 62_500 and max(counts) == 4980 and min(counts) == 5
    assert sum(n > 0 for n in counts) == 365
    groups = shot_group_of(counts)
    assert (groups.count("many"), groups.count("medium"), groups.count("few")) == (131, 163, 71)
    validate_split(split, "/nonexistent", 365, check_files=False)


@pytest.mark.parametrize("name, lines, classes, per_class", [
    ("Places_LT_val", 7_300, 365, 20), ("Places_LT_test", 36_500, 365, 100),
    ("ImageNet_LT_val", 20_000, 1000, 20), ("ImageNet_LT_test", 50_000, 1000, 50)])
def test_shipped_balanced_lists(name, lines, classes, per_class):
    split = read_split_list(shipped_list(name))
    assert len(split.paths) == lines and split.counts(classes) == [per_class] * classes


def test_shipped_lists_match_their_checksums():
    want = expected_sha256()
    assert sorted(want) == sorted(f"{n}.txt" for n in available()) and len(want) == 5
    for name in available():
        assert sha256_of(name) == want[f"{name}.txt"], name
    with pytest.raises(FileNotFoundError, match="shipped: ImageNet_LT_test"):
        shipped_list("ImageNet_LT_train")


def test_plain_and_gzipped_lists_read_the_same(tmp_path):
    text = "a/1.jpg 0\nb/2.jpg 3\n\nc d/3.jpg 1\n"
    (tmp_path / "l.txt").write_text(text)
    with gzip.open(tmp_path / "l.txt.gz", "wt") as f:
        f.write(text)
    plain, packed = (read_split_list(tmp_path / n) for n in ("l.txt", "l.txt.gz"))
    assert plain.paths == packed.paths == ["a/1.jpg", "b/2.jpg", "c d/3.jpg"]
    assert plain.labels == packed.labels == [0, 3, 1]


def test_missing_file_and_bad_label_are_reported(tree, tmp_path):
    split = read_split_list(tree / "Places_LT_train.txt")
    validate_split(split, tree, 365)
    bad = tmp_path / "bad.txt"
    bad.write_text("train/class_000/0000.jpg 0\ntrain/nope/1.jpg 3\ntrain/nope/2.jpg 4\n")
    with pytest.raises(FileNotFoundError, match=r"2 of 3 images missing under .* e\.g\. "
                                                r"\['train/nope/1\.jpg', 'train/nope/2\.jpg'\]"):
        validate_split(read_split_list(bad), tree, 365)
    bad.write_text("train/class_000/0000.jpg 0\ntrain/class_001/0000.jpg 365\n")
    with pytest.raises(ValueError, match=r"1 label\(s\) outside \[0, 365\), first: entry 2"):
        validate_split(read_split_list(bad), tree, 365)
    bad.write_text("just-a-path\n")
    with pytest.raises(ValueError, match=r"malformed line\(s\).*\[1\]"):
        read_split_list(bad)


def test_build_data_counts_from_the_train_list_and_loads_batches(tree):
    cfg = TrialConfig.from_dict({"dataset": "places_lt", "data_root": str(tree),
                                 "image_size": 32, "num_workers": 0, "batch_size": 16})
    assert cfg.model == "resnet50" and cfg.epochs == 90 and cfg.batch_size == 16   # recipe
    data = build_data(cfg, "cpu")
    assert data.class_counts == [1] * 365
    train, evals = make_loaders(data, cfg, "cpu")
    train.set_epoch(0)
    x, y = next(iter(train))
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (16,)
    train.set_epoch(0)
    x2, y2 = next(iter(train))
    assert torch.equal(y, y2) and torch.equal(x, x2)            # (seed, epoch) reproduces
    xt, _ = next(iter(evals["test"]))
    assert xt.shape[1:] == (3, 32, 32)


def test_jpeg_decode_on_the_device_path(tree):
    import torchvision.io as io
    files = sorted((tree / "train").glob("*/*.jpg"))[:4]
    out = decode_batch([io.read_file(str(f)) for f in files], "cpu", 32, train=False)
    assert out.shape == (4, 3, 32, 32) and torch.isfinite(out).all()


@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_resnet50_forward_and_one_training_step(head):
    model = create_model("resnet50", 365, head=head)
    loss = create_loss("elm" if head == "cosine" else "ce", [50, 20, 5] * 121 + [7, 8])
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([0, 364])
    logits, feat = model(x)
    assert logits.shape == (2, 365) and feat.shape == (2, 2048)
    before = model.linear.weight.detach().clone()
    value = loss(logits, y, feat)
    value.backward()
    opt.step()
    assert torch.isfinite(value) and not torch.equal(before, model.linear.weight)


def test_init_weights_from_a_local_file(tmp_path):
    import torchvision
    from trainables.models.resnet_imagenet import load_init_weights
    tv = torchvision.models.resnet50(weights=None)
    torch.save(tv.state_dict(), tmp_path / "w.pt")
    model = create_model("resnet50", 10)
    load_init_weights(model, tmp_path / "w.pt")
    assert torch.equal(model.backbone.conv1.weight, tv.conv1.weight)
    with pytest.warns(UserWarning, match="leaks"):
        load_init_weights(model, tmp_path / "w.pt", "imagenet_lt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_init_weights(model, tmp_path / "nope.pt")


def test_large_scale_recipe_lr():
    cfg = TrialConfig.from_dict({"dataset": "places_lt"})
    lr = {e: cfg.lr_at(e - 1) for e in (1, 5, 6, 50, 51, 70, 71, 85, 86, 90)}
    assert lr[1] == pytest.approx(0.02) and lr[5] == pytest.approx(0.1)
    assert lr[6] == lr[50] == pytest.approx(0.1)
    assert lr[51] == lr[70] == pytest.approx(0.01)
    assert lr[71] == lr[85] == pytest.approx(0.001)
    assert lr[86] == lr[90] == pytest.approx(1e-4)
    assert cfg.schedule()["drw_epoch"] == 50


def test_one_epoch_through_the_cli(tree, tmp_path, capsys):
    from trainables.run import main
    rc = main(["--dataset", "places_lt", "--data-root", str(tree), "--epochs", "1",
               "--image-size", "32", "--batch-size", "64", "--eval-batch-size", "128",
               "--num-workers", "2", "--loss", "ldam", "--drw", "--device", "cpu",
               "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "places_lt" in out and "final top1" in out and "few" in out
    assert (tmp_path / "last.pt").exists()
