"""Tiny datasets in their real on-disk formats, for tests (no downloads here)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def write_pickle(path, obj):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)


def fabricate_cifar(root: Path, classes: int, per_file=20, seed=0):
    rng = np.random.default_rng(seed)
    rows = {}
    if classes == 10:
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        for n in names:
            data = rng.integers(0, 256, (per_file, 3072), dtype=np.uint8)
            labels = rng.integers(0, 10, per_file).tolist()
            write_pickle(folder / n, {b"data": data, b"labels": labels, b"batch_label": b"x"})
            rows[n] = (data, labels)
        write_pickle(folder / "batches.meta", {b"label_names": [b"c"] * 10})
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True)
        for n in ("train", "test"):
            data = rng.integers(0, 256, (per_file, 3072), dtype=np.uint8)
            fine = rng.integers(0, 100, per_file).tolist()
            write_pickle(folder / n, {b"data": data, b"fine_labels": fine,
                                      b"coarse_labels": [f // 5 for f in fine]})
            rows[n] = (data, fine)
        write_pickle(folder / "meta", {b"fine_label_names": [b"c"] * 100})
    return rows


def fabricate_places_tree(root, classes: int = 365, per_class_train=(1,), test_per_class=1):
    """A tiny image tree with split lists in the real format (Places-LT: 365 classes)."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    lines = {"train": [], "test": []}
    for split, per in (("train", per_class_train), ("test", (test_per_class,))):
        for c in range(classes):
            for k in range(per[c % len(per)]):
                rel = f"{split}/class_{c:03d}/{k:04d}.jpg"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / rel)
                lines[split].append(f"{rel} {c}")
    for split, ls in lines.items():
        (root / f"Places_LT_{split}.txt").write_text("\n".join(ls) + "\n")
    return root


INAT_CLASSES = 8142
INAT_SUPERCATEGORIES = ("Plantae", "Insecta", "Aves", "Fungi")


def fabricate_inat2018(root, head=(4, 2), test_images=24, seed=0):
    """A tiny iNaturalist 2018 in both public formats over the same image tree: the official
    COCO-style train2018.json / val2018.json and Decoupling's iNaturalist18_train.txt /
    iNaturalist18_val.txt, images at train_val2018/<super category>/<class>/<hash>.jpg|png.

    Every one of the 8,142 classes has a training image (the trainer refuses an empty class);
    class i < len(head) has head[i]. The images are six tiny distinct pictures (JPEG and PNG)
    written once and copied. The annotations are shuffled: a reader must join them to the
    images by image_id, as the JSON means, not by position."""
    import hashlib
    import io
    import json

    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(seed)
    pictures = []
    for k in range(6):
        buf, fmt = io.BytesIO(), ("JPEG", "PNG")[k % 2]
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(buf, fmt)
        pictures.append((buf.getvalue(), fmt.lower().replace("jpeg", "jpg")))
    splits = {"train": [c for c in range(INAT_CLASSES)
                        for _ in range(head[c] if c < len(head) else 1)],
              "val": [(i * 331) % INAT_CLASSES for i in range(test_images)]}
    supers = INAT_SUPERCATEGORIES
    categories = [{"id": c, "name": f"species {c}", "supercategory": supers[c % len(supers)]}
                  for c in range(INAT_CLASSES)]
    for split, labels in splits.items():
        images, lines = [], []
        for i, c in enumerate(labels):
            data, ext = pictures[(i + c) % len(pictures)]
            name = hashlib.md5(f"{split}{i}".encode()).hexdigest()
            rel = f"train_val2018/{supers[c % len(supers)]}/{c}/{name}.{ext}"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
            images.append({"id": 10 * i + 7, "file_name": rel, "width": 24, "height": 20})
            lines.append(f"{rel} {c}\n")
        annotations = [{"id": n, "image_id": im["id"], "category_id": c} for n, (im, c)
                       in enumerate(zip(images, labels))]
        order = rng.permutation(len(annotations))
        doc = {"info": {"year": 2018}, "images": images, "categories": categories,
               "annotations": [annotations[j] for j in order], "licenses": []}
        (root / f"{split}2018.json").write_text(json.dumps(doc))
        (root / f"iNaturalist18_{split}.txt").write_text("".join(lines))
    return root
