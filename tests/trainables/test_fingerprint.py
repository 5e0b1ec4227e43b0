"""The data fingerprint (trainables/data/fingerprint.py, docs/data.md): equal for the same
training data whatever the loss or network seed; another one when ratio, img_max, data_seed
(the subsampling's seed) or the validation hold-out changes, or a source file's bytes; and
docs/data.md's recipe for another codebase computes the same value on CIFAR-10 files
fabricated in the real pickle format."""
import contextlib
import gzip
import hashlib
import io
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from trainables.config import TrialConfig
from trainables.data.build import build_data

DOCS = Path(__file__).resolve().parents[2] / "docs" / "data.md"


def synth(**kw) -> TrialConfig:
    return TrialConfig(**{"dataset": "synthetic", "ratio": 10.0, "img_max": 40, "device": "cpu",
                          **kw})


def fp(cfg) -> str:
    return build_data(cfg, "cpu").fingerprint


def test_same_data_whatever_the_loss_or_network_seed():
    base = fp(synth())
    assert re.fullmatch(r"[0-9a-f]{12}", base)
    for other in (synth(loss="focal", seed=3), synth(loss="elm", drw=True, lam=0.5, seed=7),
                  synth(lr=0.05, batch_size=16, epochs=3)):
        assert fp(other) == base


@pytest.mark.parametrize("change", [{"ratio": 20.0}, {"img_max": 50}, {"data_seed": 1},
                                    {"val_fraction": 0.2}, {"imb_type": "step"}])
def test_another_subset_or_hold_out_is_another_fingerprint(change):
    base, other = build_data(synth(), "cpu"), build_data(synth(**change), "cpu")
    assert other.fingerprint != base.fingerprint
    assert other.source_fingerprint == base.source_fingerprint    # same generator


def test_the_hold_out_changes_the_training_examples_not_only_their_count():
    # two hold-outs of the same size from different subsets: the examples decide, not sizes
    a, b = build_data(synth(val_fraction=0.2), "cpu"), build_data(
        synth(val_fraction=0.2, data_seed=5), "cpu")
    assert a.class_counts == b.class_counts and a.fingerprint != b.fingerprint


# ---- CIFAR-10 in its real pickle format ------------------------------------------------
def fabricate_balanced_cifar10(root: Path, per_file: int = 20, seed: int = 0) -> Path:
    """data_batch_1..5 and test_batch as CIFAR's pickles, each class equally often (a
    subsample needs img_max images of class 0)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = rng.permutation(np.arange(per_file) % 10).tolist()
        data = rng.integers(0, 256, (per_file, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": b"x"}, fh)
    return folder


def docs_recipe() -> str:
    """The Python block docs/data.md gives other codebases for the standard CIFAR-LT."""
    text = DOCS.read_text()
    section = text[text.index("**The standard CIFAR-LT construction"):]
    return section[section.index("```python") + len("```python"):section.index("```\n", 10)]


def test_docs_recipe_for_another_codebase_gives_the_trials_fingerprint(tmp_path):
    fabricate_balanced_cifar10(tmp_path)      # 10 images per class in data_batch_1..5
    cfg = TrialConfig(dataset="cifar10", data_root=str(tmp_path), img_max=10, ratio=5.0,
                      device="cpu")
    code = docs_recipe()
    assert 'root = "data/cifar-10-batches-py"' in code and "5000, 100, 10" in code
    code = code.replace('"data/cifar-10-batches-py"', repr(str(tmp_path / "cifar-10-batches-py")))
    code = code.replace("img_max, ratio, C = 5000, 100, 10", "img_max, ratio, C = 10, 5, 10")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOCS), "exec"), {})
    data = build_data(cfg, "cpu")
    assert out.getvalue().strip() == data.fingerprint
    assert sum(data.class_counts) == sum(int(10 * 0.2 ** (i / 9)) for i in range(10))


def test_a_changed_source_byte_changes_the_source_and_data_fingerprints(tmp_path):
    folder = fabricate_balanced_cifar10(tmp_path)
    cfg = TrialConfig(dataset="cifar10", data_root=str(tmp_path), img_max=10, ratio=5.0,
                      device="cpu")
    before = build_data(cfg, "cpu")
    # the digest is the file's own sha256, as `sha256sum` prints it
    expected = "".join(f"source cifar-10-batches-py/{n} "
                       f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}\n"
                       for n in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"])
    assert before.source_fingerprint == hashlib.sha256(expected.encode()).hexdigest()[:12]
    assert build_data(cfg, "cpu").fingerprint == before.fingerprint      # read once, same
    path = folder / "test_batch"          # not even a training image: still another source
    d = pickle.loads(path.read_bytes(), encoding="bytes")
    d[b"data"] = d[b"data"].copy()
    d[b"data"][0, 0] ^= 1
    path.write_bytes(pickle.dumps(d))
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))   # a later write
    after = build_data(cfg, "cpu")
    assert after.source_fingerprint != before.source_fingerprint
    assert after.fingerprint != before.fingerprint
    assert after.class_counts == before.class_counts


# ---- Fashion-MNIST idx: a gzipped and a plain copy are one source ------------------------
def write_idx(path: Path, arr: np.ndarray, gz: bool) -> None:
    arr = np.asarray(arr, dtype=np.uint8)
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big")
                                                   for d in arr.shape)
    data = header + arr.tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def test_fashion_mnist_gzipped_and_plain_files_give_one_fingerprint(tmp_path):
    rng = np.random.default_rng(0)
    imgs, labels = rng.integers(0, 256, (60, 28, 28)), np.arange(60) % 10
    prints = []
    for gz in (False, True):
        root = tmp_path / ("gz" if gz else "plain")
        root.mkdir()
        write_idx(root / "train-images-idx3-ubyte", imgs, gz)
        write_idx(root / "train-labels-idx1-ubyte", labels, gz)
        write_idx(root / "t10k-images-idx3-ubyte", imgs[:10], gz)
        write_idx(root / "t10k-labels-idx1-ubyte", labels[:10], gz)
        cfg = TrialConfig(dataset="fashion_mnist", data_root=str(root), img_max=6, ratio=2.0,
                          device="cpu")
        d = build_data(cfg, "cpu")
        prints.append((d.fingerprint, d.source_fingerprint))
    assert prints[0] == prints[1]


# ---- split lists -----------------------------------------------------------------------
def test_a_split_list_dataset_is_fingerprinted_by_its_lists(places_tree, tmp_path):
    from trainables.data.build import build_file_data
    from trainables.data.registry import get_dataset
    lists = {s: places_tree / f"Places_LT_{s}.txt" for s in ("train", "test")}
    cfg = TrialConfig(dataset="places_lt", data_root=str(places_tree),
                      train_list=str(lists["train"]), test_list=str(lists["test"]),
                      device="cpu")
    base = build_file_data(cfg, get_dataset("places_lt"))
    assert re.fullmatch(r"[0-9a-f]{12}", base.fingerprint)
    lines = lists["train"].read_text().splitlines()
    swapped = tmp_path / "train.txt"          # the same images, two labels swapped
    a, b = lines[0].rsplit(maxsplit=1), lines[1].rsplit(maxsplit=1)
    swapped.write_text("\n".join([f"{a[0]} {b[1]}", f"{b[0]} {a[1]}", *lines[2:]]) + "\n")
    other = build_file_data(cfg.replace(train_list=str(swapped)), get_dataset("places_lt"))
    assert other.fingerprint != base.fingerprint
    assert other.source_fingerprint != base.source_fingerprint
