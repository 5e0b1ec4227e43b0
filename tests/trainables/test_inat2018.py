"""iNaturalist 2018 (issue 40): both public formats read to the same records, its recipe,
one-line errors for what the files get wrong, and an epoch through the trial CLI."""
import gzip
import json
import re
import shutil

import pytest

from fabricate import INAT_CLASSES, fabricate_inat2018
from trainables.config import TrialConfig
from trainables.data.build import build_data
from trainables.data.large_scale import read_split, validate_split
from trainables.data.registry import get_dataset

PREFIX = "python -m trainables.run: error: --dataset inat2018: "


@pytest.fixture(scope="module")
def inat(tmp_path_factory):
    return fabricate_inat2018(tmp_path_factory.mktemp("inat"))


def test_json_and_lists_give_the_same_records(inat, tmp_path):
    doc = json.loads((inat / "train2018.json").read_text())
    # the fabricated annotations are shuffled: pairing them with images by position would
    # give other labels than the list's, so equality below proves the join by image_id
    assert [a["image_id"] for a in doc["annotations"]] != [im["id"] for im in doc["images"]]
    for split, n in (("val", 24), ("train", 8146)):
        coco = read_split(inat / f"{split}2018.json")
        listed = read_split(inat / f"iNaturalist18_{split}.txt")
        assert (coco.paths, coco.labels) == (listed.paths, listed.labels) and len(coco.paths) == n
        validate_split(coco, inat, INAT_CLASSES)
    with gzip.open(tmp_path / "train2018.json.gz", "wt") as f:
        f.write((inat / "train2018.json").read_text())
    packed = read_split(tmp_path / "train2018.json.gz")
    counts = packed.counts(INAT_CLASSES)
    assert packed.labels == listed.labels and counts[:3] == [4, 2, 1] and min(counts) == 1


def test_registry_and_recipe_defaults():
    info = get_dataset("inat2018")
    assert (info.num_classes, info.img_max, info.kind) == (8142, 1000, "files")
    assert info.split_files == ("train2018.json", "", "val2018.json")
    assert "tested on val2018" in info.description and "24,426" in info.description
    cfg = TrialConfig.from_dict({"dataset": "inat2018"})
    assert (cfg.model, cfg.epochs, cfg.batch_size, cfg.lr, cfg.warmup_epochs) == \
        ("resnet50", 90, 256, 0.1, 5)
    assert (cfg.lr_milestones, cfg.lr_factors, cfg.weight_decay) == ((30, 60), (0.1, 0.01), 1e-4)
    assert cfg.schedule()["drw_epoch"] == 30
    lr = {e: cfg.lr_at(e - 1) for e in (1, 5, 6, 30, 31, 60, 61, 90)}
    assert lr[1] == pytest.approx(0.02) and lr[5] == lr[6] == lr[30] == pytest.approx(0.1)
    assert lr[31] == lr[60] == pytest.approx(0.01) and lr[61] == lr[90] == pytest.approx(0.001)
    # ImageNet-LT keeps the paper's recipe; a field the user sets wins over the dataset's
    places = TrialConfig.from_dict({"dataset": "imagenet_lt"})
    assert (places.lr_milestones, places.weight_decay) == ((50, 70, 85), 2e-4)
    assert TrialConfig.from_dict({"dataset": "inat2018", "weight_decay": 5e-4}).weight_decay == 5e-4


def _coco(images, annotations, categories=(0, 1)):
    return json.dumps({"images": [{"id": i, "file_name": f} for i, f in images],
                       "annotations": [{"id": n, "image_id": i, "category_id": c}
                                       for n, (i, c) in enumerate(annotations)],
                       "categories": [{"id": c} for c in categories]}, indent=1)


GOOD = [(1, "a.jpg"), (2, "b.jpg")]
BAD_JSON = [
    ('{"images": [\n  {"id": 1,\n  "file_name" "a.jpg"}]}',
     r"train2018\.json: not valid JSON at line 3, column 15: Expecting ':' delimiter"),
    (_coco(GOOD, [(1, 0), (2, 9)]),
     r"train2018\.json: 1 annotation\(s\) with a category_id not in its 2 categories, first: "
     r"annotations\[1\] \(image_id 2\) has category_id 9"),
    (_coco(GOOD, [(1, 0), (2, 1)]).replace('"category_id": 1', '"category_id": "1"'),
     r"annotations\[1\] has no 'category_id' that is an integer \(found '1'\)"),
    ('{"images": [], "annotations": []}', r"want a JSON object with the lists \['images', "
                                          r"'annotations', 'categories'\]"),
    (_coco(GOOD, [(1, 0)]), r"1 image\(s\) without an annotation, first: image id 2 'b\.jpg'"),
    (_coco(GOOD, [(1, 0), (2, 1), (3, 1)]),
     r"1 annotation\(s\) of an image not in 'images', first: annotations\[2\] has image_id 3"),
    (_coco(GOOD, [(1, 0), (2, 1), (1, 1)]),
     r"image_id 1 has a second annotation, annotations\[2\]"),
]


@pytest.mark.parametrize("text, match", BAD_JSON, ids=[
    "bad-json", "unknown-category", "string-category", "not-coco", "unlabelled-image",
    "orphan-annotation", "two-annotations"])
def test_malformed_or_unjoinable_json_is_one_line_naming_the_file(tmp_path, text, match):
    (tmp_path / "train2018.json").write_text(text)
    with pytest.raises(ValueError, match=match) as e:
        read_split(tmp_path / "train2018.json")
    assert str(tmp_path / "train2018.json") in str(e.value) and "\n" not in str(e.value)


def test_a_binary_split_file_is_named_not_a_codec_trace(tmp_path):
    (tmp_path / "train2018.json").write_bytes(b'{"images": [\xff\xfe]}')
    with pytest.raises(ValueError, match=r"train2018\.json: not UTF-8 text \(byte 12\)"):
        read_split(tmp_path / "train2018.json")


@pytest.mark.parametrize("line, match", ids=["one-field", "float-label"], argvalues=[
    ("train_val2018/Aves/2/c.jpg", r"1 malformed line\(s\) .* first at line\(s\) \[2\]: "
                                   r"'train_val2018/Aves/2/c\.jpg'"),
    ("train_val2018/Aves/2/c.jpg 2.0", r"the label an integer\), first at line\(s\) \[2\]"),
])
def test_a_list_line_without_two_fields_or_an_integer_label_names_file_and_line(tmp_path, line,
                                                                                  match):
    (tmp_path / "l.txt").write_text(f"train_val2018/Aves/0/a.jpg 0\n{line}\n")
    with pytest.raises(ValueError, match=match):
        read_split(tmp_path / "l.txt")


def test_a_list_label_outside_the_8142_classes_is_refused(tmp_path):
    (tmp_path / "l.txt").write_text("a.jpg 0\nb.jpg 8142\n")
    with pytest.raises(ValueError, match=r"l\.txt: 1 label\(s\) outside \[0, 8142\), first: "
                                         r"entry 2 'b\.jpg' has label 8142"):
        validate_split(read_split(tmp_path / "l.txt"), tmp_path, INAT_CLASSES)


def _broken_root(tmp_path, inat, what: str):
    """A data_root whose train split has one fault (val2018.json is fine)."""
    shutil.copy(inat / "val2018.json", tmp_path / "val2018.json")
    real = read_split(inat / "iNaturalist18_train.txt")
    for p in real.paths[:3]:
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(inat / p, tmp_path / p)
    images = list(enumerate(real.paths[:3]))
    if what == "missing image":
        images[2] = (2, "train_val2018/Aves/2/gone.jpg")
    labels = [(i, 77 if what == "unknown category" and i == 1 else c)
              for i, c in enumerate(real.labels[:3])]
    text = _coco(images, labels, categories=range(3))
    (tmp_path / "train2018.json").write_text(text[:40] if what == "malformed" else text)
    return tmp_path


@pytest.mark.parametrize("what, err", ids=["missing-image", "unknown-category", "malformed"],
                         argvalues=[
    ("missing image", r"train list \(.*train2018\.json\): 1 of 3 images missing under .* e\.g\. "
                      r"\['train_val2018/Aves/2/gone\.jpg'\]$"),
    ("unknown category", r"train2018\.json: 1 annotation\(s\) with a category_id not in its 3 "
                         r"categories, first: annotations\[1\] \(image_id 1\) has category_id 77$"),
    ("malformed", r"train2018\.json: not valid JSON at line \d+, column \d+: Unterminated string"),
])
def test_the_cli_refuses_bad_files_before_training_exit_2_one_line(tmp_path, inat, capsys, what,
                                                                   err):
    from trainables.run import main
    (tmp_path / "root").mkdir()
    root = _broken_root(tmp_path / "root", inat, what)
    with pytest.raises(SystemExit) as e:
        main(["--dataset", "inat2018", "--data-root", str(root), "--device", "cpu",
              "--out", str(tmp_path / "out")])
    lines = capsys.readouterr().err.splitlines()
    assert e.value.code == 2 and len(lines) == 1 and lines[0].startswith(PREFIX), lines
    assert re.search(err, lines[0]), lines[0]
    assert not (tmp_path / "out").exists()                  # refused before anything ran


def test_build_data_counts_every_class_from_the_json(inat):
    cfg = TrialConfig.from_dict({"dataset": "inat2018", "data_root": str(inat),
                                 "num_workers": 0, "image_size": 16})
    data = build_data(cfg, "cpu")
    assert len(data.class_counts) == 8142 and data.class_counts[:3] == [4, 2, 1]
    assert data.val is None and len(data.test) == 24       # no default validation split


@pytest.mark.slow
def test_one_epoch_through_the_cli_from_the_official_json(inat, tmp_path, capsys):
    """ResNet32, not the recipe's ResNet-50: every one of the 8,142 classes needs a training
    image, so an epoch is 8,146 images, and ResNet-50 trains them at ~20 images/s on two CPU
    cores; the data path (JSON, validation, loader, evaluation, checkpoint) is the same."""
    from trainables.run import main
    rc = main(["--dataset", "inat2018", "--data-root", str(inat), "--model", "resnet32",
               "--epochs", "1", "--image-size", "16", "--batch-size", "256",
               "--eval-batch-size", "64", "--num-workers", "0", "--loss", "ldam", "--drw",
               "--device", "cpu", "--out", str(tmp_path), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "# inat2018" in out and "train=8146" in out and "final top1" in out
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["dataset"] == "inat2018" and cfg["lr_milestones"] == [30, 60]
    assert cfg["weight_decay"] == 1e-4 and cfg["train_list"] is None    # the default JSON
    last = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["epoch"] == 1 and 0 <= last["test_top1"] <= last["test_top5"] <= 100
    assert (tmp_path / "last.pt").exists()
