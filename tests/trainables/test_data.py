"""Data: imbalance (docs/data.md), readers on files fabricated in the real formats, loader."""
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from fabricate import fabricate_cifar
from trainables.config import TrialConfig
from trainables.data import build as build_mod
from trainables.data import fashion_mnist
from trainables.data.build import build_data, make_loaders
from trainables.data.cifar import read_cifar10, read_cifar100
from trainables.data.imbalance import class_counts, split_validation, subsample_indices
from trainables.data.loader import DeviceLoader, epoch_seed
from trainables.data.registry import get_dataset


# ---- imbalance ------------------------------------------------------------------------
@pytest.mark.parametrize("classes, img_max, imb, ratio, total", [
    (10, 5000, "lt", 10, 20_431), (10, 5000, "lt", 100, 12_406),
    (10, 5000, "step", 10, 27_500), (10, 5000, "step", 100, 25_250),
    (100, 500, "lt", 10, 19_573), (100, 500, "lt", 100, 10_847),
    (100, 500, "step", 10, 27_500), (100, 500, "step", 100, 25_250)])
def test_class_counts_of_the_eight_cifar_settings(classes, img_max, imb, ratio, total):
    counts = class_counts(classes, img_max, imb, ratio)
    assert len(counts) == classes and sum(counts) == total
    assert counts[0] == img_max and counts[-1] == int(img_max / ratio)
    assert counts == sorted(counts, reverse=True)


def test_lt_counts_truncate_never_round():
    counts = class_counts(100, 500, "lt", 100)
    rounded = [round(500 * 0.01 ** (i / 99)) for i in range(100)]
    assert counts != rounded and all(c <= r for c, r in zip(counts, rounded))


def test_unknown_imbalance_type():
    with pytest.raises(ValueError, match=r"imb_type='exp' is not valid; choose one of"):
        class_counts(10, 5000, "exp", 10)


def spec_subsample(targets, counts, seed):
    """docs/data.md literally, as LDAM-DRW's gen_imbalanced_data."""
    np.random.seed(seed)
    out = []
    for c, n in enumerate(counts):
        idx = np.where(targets == c)[0]
        np.random.shuffle(idx)
        out.extend(idx[:n].tolist())
    return np.array(out)


def test_subsample_is_spec_exact_deterministic_and_leaves_global_rng_alone():
    targets = np.repeat(np.arange(10), 50)[np.random.default_rng(3).permutation(500)]
    counts = class_counts(10, 50, "lt", 10)
    np.random.seed(77)
    np.random.random(3)                                  # a caller's stream, mid-way
    before = np.random.get_state()
    a = subsample_indices(targets, counts, 0)
    after = np.random.get_state()
    assert np.array_equal(after[1], before[1]) and after[2:] == before[2:]
    assert np.array_equal(a, subsample_indices(targets, counts, 0))
    assert not np.array_equal(a, subsample_indices(targets, counts, 1))
    assert np.bincount(targets[a], minlength=10).tolist() == counts
    assert np.array_equal(a, spec_subsample(targets, counts, 0))
    assert np.array_equal(subsample_indices(targets, counts, 5), spec_subsample(targets, counts, 5))


def test_subsample_refuses_a_class_too_small():
    targets = np.repeat(np.arange(3), [10, 10, 4])
    with pytest.raises(ValueError, match="class 2 has 4 images, 5 requested"):
        subsample_indices(targets, [10, 5, 5], 0)


def test_split_validation_is_disjoint_per_class_and_deterministic():
    targets = np.repeat(np.arange(5), [40, 20, 10, 5, 2])
    idx = np.arange(len(targets))
    tr, va = split_validation(idx, targets, 0.2, data_seed=0)
    assert set(tr) | set(va) == set(idx) and not set(tr) & set(va)
    assert np.bincount(targets[va], minlength=5).tolist() == [8, 4, 2, 1, 1]
    tr2, va2 = split_validation(idx, targets, 0.2, data_seed=0)
    assert np.array_equal(tr, tr2) and np.array_equal(va, va2)
    assert not np.array_equal(va, split_validation(idx, targets, 0.2, data_seed=1)[1])
    tr0, va0 = split_validation(idx, targets, 0.0, 0)
    assert len(va0) == 0 and np.array_equal(tr0, idx)


def test_split_validation_rounds_half_up_and_never_takes_a_whole_class():
    targets = np.repeat(np.arange(4), [5, 3, 1, 2])
    idx = np.arange(len(targets))
    tr, va = split_validation(idx, targets, 0.5, data_seed=0)
    assert np.bincount(targets[va], minlength=4).tolist() == [3, 2, 0, 1]   # 2.5→3, 1.5→2
    assert np.bincount(targets[tr], minlength=4).tolist() == [2, 1, 1, 1]


def test_train_images_depend_on_data_seed_only():
    base = dict(dataset="synthetic", ratio=10.0, device="cpu")
    a = build_data(TrialConfig(**base, seed=0), "cpu")
    b = build_data(TrialConfig(**base, seed=9), "cpu")
    c = build_data(TrialConfig(**base, data_seed=1), "cpu")
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.train_y, b.train_y)
    assert not torch.equal(a.train_x, c.train_x)
    assert a.class_counts == class_counts(10, 100, "lt", 10)
    assert a.test_x.shape[0] == 200                         # the full balanced test set


def test_validation_hold_out_comes_from_train_and_counts_follow():
    d = build_data(TrialConfig(dataset="synthetic", ratio=10.0, val_fraction=0.2), "cpu")
    full = class_counts(10, 100, "lt", 10)
    val_counts = torch.bincount(d.val_y, minlength=10).tolist()
    assert [t + v for t, v in zip(d.class_counts, val_counts)] == full
    _, evals = make_loaders(d, TrialConfig(dataset="synthetic", val_fraction=0.2))
    assert set(evals) == {"test", "val"}


# ---- CIFAR pickles ---------------------------------------------------------------------
def test_cifar10_reader_on_fabricated_pickles(tmp_path):
    rows = fabricate_cifar(tmp_path, 10)
    raw = read_cifar10(str(tmp_path), download=False)
    assert raw.train_x.shape == (100, 3, 32, 32) and raw.train_x.dtype == np.uint8
    assert raw.test_x.shape == (20, 3, 32, 32) and raw.train_y.dtype == np.int64
    first = rows["data_batch_1"][0][0]
    assert raw.train_x[0, :, 0, 0].tolist() == [first[0], first[1024], first[2048]]
    assert np.array_equal(raw.train_x[0].reshape(-1), first)
    data, labels = rows["data_batch_2"]
    row = data[3]
    assert raw.train_x[23, :, 0, 0].tolist() == [row[0], row[1024], row[2048]]
    assert raw.train_x[23, 2, 31, 31] == row[3071]
    assert raw.train_y[20:40].tolist() == labels


def test_cifar100_reader_uses_fine_labels(tmp_path):
    rows = fabricate_cifar(tmp_path, 100)
    raw = read_cifar100(str(tmp_path), download=False)
    assert raw.train_y.tolist() == rows["train"][1] and raw.test_x.shape == (20, 3, 32, 32)


def test_missing_cifar_says_where_and_how(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data_batch_1.*missing from .*"
                       r"cifar-10-batches-py.*--download"):
        read_cifar10(str(tmp_path), download=False)


# ---- Fashion-MNIST idx -----------------------------------------------------------------
def write_idx(path: Path, arr: np.ndarray, gz: bool):
    head = struct.pack(">I", 0x0800 | arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    blob = head + arr.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(str(path) + (".gz" if gz else ""), "wb").write(blob)


@pytest.mark.parametrize("gz", [False, True])
def test_fashion_mnist_reader_on_fabricated_idx(tmp_path, monkeypatch, gz):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", str(tmp_path / "nowhere"))
    folder = tmp_path / "fashion_mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    imgs = rng.integers(1, 256, (12, 28, 28))
    write_idx(folder / "train-images-idx3-ubyte", imgs, gz)
    write_idx(folder / "train-labels-idx1-ubyte", np.arange(12) % 10, gz)
    write_idx(folder / "t10k-images-idx3-ubyte", imgs[:5], gz)
    write_idx(folder / "t10k-labels-idx1-ubyte", np.arange(5), gz)
    raw = fashion_mnist.read_fashion_mnist(str(tmp_path), download=False)
    assert raw.train_x.shape == (12, 1, 32, 32) and raw.test_x.shape == (5, 1, 32, 32)
    assert np.array_equal(raw.train_x[:, 0, 2:30, 2:30], imgs)
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert (raw.train_x[:, 0][:, border] == 0).all()
    assert raw.train_y.tolist() == (np.arange(12) % 10).tolist()


def test_idx_reader_rejects_a_bad_magic_or_a_short_file(tmp_path):
    write_idx(tmp_path / "ok", np.zeros((2, 3, 3)), gz=False)
    blob = (tmp_path / "ok").read_bytes()
    (tmp_path / "short").write_bytes(blob[:-1])
    (tmp_path / "magic").write_bytes(struct.pack(">I", 0x0D03) + blob[4:])   # float32 type
    assert fashion_mnist.read_idx(tmp_path / "ok").shape == (2, 3, 3)
    for bad in ("short", "magic"):
        with pytest.raises(ValueError):
            fashion_mnist.read_idx(tmp_path / bad)


def test_fashion_mnist_missing_lists_places(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"looked in .*nowhere.*dataset-fashion-mnist"):
        fashion_mnist.read_fashion_mnist(str(tmp_path), download=False)


@pytest.mark.skipif(not Path(fashion_mnist.DEBIAN_DIR).exists(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_files():
    raw = fashion_mnist.read_fashion_mnist(fashion_mnist.DEBIAN_DIR, download=False)
    assert raw.train_x.shape == (60_000, 1, 32, 32) and raw.test_x.shape == (10_000, 1, 32, 32)
    assert np.bincount(raw.train_y).tolist() == [6000] * 10
    x = raw.train_x.astype(np.float64) / 255
    info = get_dataset("fashion_mnist")
    assert x.mean() == pytest.approx(info.mean[0], abs=1e-3)
    assert x.std() == pytest.approx(info.std[0], abs=1e-3)


# ---- device loader ---------------------------------------------------------------------
def small_set(n=50, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, c, 32, 32), generator=g, dtype=torch.uint8),
            torch.arange(n))


MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


def collect(loader, epoch):
    loader.set_epoch(epoch)
    xs, ys = zip(*list(loader))
    return torch.cat(xs), torch.cat(ys)


def test_eval_loader_normalises_exactly_in_order():
    x, y = small_set()
    out, yy = collect(DeviceLoader(x, y, 16, MEAN, STD, augment=False, shuffle=False), 0)
    m, s = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    torch.testing.assert_close(out, (x.float() / 255 - m) / s)
    assert torch.equal(yy, y) and out.dtype == torch.float32


def test_train_loader_is_a_permutation_and_depends_on_seed_and_epoch_only():
    x, y = small_set()
    make = lambda seed: DeviceLoader(x, y, 16, MEAN, STD, augment=True, shuffle=True,  # noqa
                                     seed=seed)
    a0, ya0 = collect(make(0), 0)
    assert sorted(ya0.tolist()) == list(range(50)) and a0.shape == (50, 3, 32, 32)
    b0, yb0 = collect(make(0), 0)
    assert torch.equal(a0, b0) and torch.equal(ya0, yb0)
    a1, ya1 = collect(make(0), 1)
    assert not torch.equal(ya0, ya1)
    c0, yc0 = collect(make(1), 0)
    assert not torch.equal(ya0, yc0)
    # the augmentation itself (not just the order) depends on seed and epoch
    fixed = lambda seed: DeviceLoader(x, y, 16, MEAN, STD, augment=True, shuffle=False,  # noqa
                                      seed=seed)
    s0e0, _ = collect(fixed(0), 0)
    assert torch.equal(s0e0, collect(fixed(0), 0)[0])
    assert not torch.equal(s0e0, collect(fixed(0), 1)[0])
    assert not torch.equal(s0e0, collect(fixed(1), 0)[0])
    loader = make(0)
    collect(loader, 5)
    again, _ = collect(loader, 0)                 # no hidden state carried across epochs
    assert torch.equal(again, a0)


def test_epoch_seed_is_the_recorded_formula():
    """Every (seed, epoch) generator is seeded through epoch_seed: changing its formula would
    change every trial's batch order and augmentation, so its values are pinned here."""
    assert epoch_seed(0, 0) == 0
    assert epoch_seed(3, 5) == 3 * 1_000_003 + 5 * 7_919
    assert epoch_seed(3, 5, stream=424_242) == 3 * 1_000_003 + 5 * 7_919 + 424_242
    assert epoch_seed(2**62, 0) == (2**62 * 1_000_003) % (2**63 - 1)
    loader = DeviceLoader(*small_set(), 16, MEAN, STD, augment=False, shuffle=True, seed=3)
    loader.set_epoch(5)
    g = torch.Generator().manual_seed(epoch_seed(3, 5))
    assert torch.equal(next(iter(loader))[1], small_set()[1][torch.randperm(50, generator=g)[:16]])


def test_augmented_image_is_a_crop_or_flipped_crop_of_the_padded_original():
    x, y = small_set(n=32)
    loader = DeviceLoader(x, y, 32, (0, 0, 0), (1 / 255,) * 3, augment=True, shuffle=False,
                          seed=3)
    out, _ = collect(loader, 0)                 # mean 0, std 1/255: out = raw pixel values
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4)).float()
    kinds = set()
    for i in range(32):
        matches = [(oy, ox, f) for oy in range(9) for ox in range(9) for f in (False, True)
                   if torch.equal(out[i], (lambda c: c.flip(2) if f else c)(
                       padded[i, :, oy:oy + 32, ox:ox + 32]))]
        assert matches, f"image {i} is not a crop of its padded original"
        kinds.add(tuple(sorted({f for *_, f in matches})))
    assert (True,) in kinds and (False,) in kinds     # both flipped and unflipped images


def test_len_and_drop_last_and_channels_last():
    x, y = small_set(n=50)
    assert len(DeviceLoader(x, y, 16, MEAN, STD, augment=False, shuffle=False)) == 4
    dl = DeviceLoader(x, y, 16, MEAN, STD, augment=True, shuffle=True, drop_last=True,
                      channels_last=True)
    batches = list(dl)
    assert len(dl) == len(batches) == 3 and all(b[0].shape[0] == 16 for b in batches)
    assert batches[0][0].is_contiguous(memory_format=torch.channels_last)
    assert batches[0][0].dtype == torch.float32 and batches[0][1].dtype == y.dtype
    assert len(DeviceLoader(x, y, 10, MEAN, STD, augment=False, shuffle=False,
                            drop_last=True)) == 5


def test_raw_reads_are_cached_per_process(monkeypatch):
    calls = []
    info = get_dataset("synthetic")
    build_mod._read_once.cache_clear()    # the cache is an lru_cache, no module-level dict
    real = type(info).read
    monkeypatch.setattr(type(info), "read", lambda self, r, d: calls.append(r) or real(self, r, d))
    for seed in range(3):
        build_data(TrialConfig(dataset="synthetic", seed=seed), "cpu")
    assert len(calls) == 1
