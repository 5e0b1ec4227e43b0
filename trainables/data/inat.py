"""iNaturalist 2018's official annotation files (COCO-style JSON) read as split records.

``train2018.json`` and ``val2018.json`` hold ``images`` (``id``, ``file_name`` relative to the
image root), ``annotations`` (``image_id``, ``category_id``: one per image) and ``categories``
(``id``, 0..8141). Decoupling (Kang et al., ICLR 2020; classifier-balancing's
data/iNaturalist18/gen_lists.py) turns them into the ``path label`` lists the field passes
around, ``iNaturalist18_train.txt`` / ``iNaturalist18_val.txt``: each image's file_name and its
annotation's category_id, in the order of ``images``. ``coco_records`` makes the same
records, so both formats take one path from there on (large_scale.read_split makes them a
SplitList, validate_split checks labels and images). Unlike gen_lists.py it joins annotations
to images by ``image_id`` instead of asserting that the two arrays are aligned, and refuses
what the join cannot label.
"""
from __future__ import annotations

import json

_TOP = ("images", "annotations", "categories")


def coco_records(text: str, path) -> tuple[list[str], list[int]]:
    """(file_name, category_id) of each image of a COCO-style classification file's ``text``,
    in the order of ``images``; anything malformed or that does not join is a ValueError
    naming ``path``."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON at line {e.lineno}, column {e.colno}: "
                         f"{e.msg}") from None
    if not isinstance(doc, dict) or any(not isinstance(doc.get(k), list) for k in _TOP):
        raise ValueError(f"{path}: want a JSON object with the lists {list(_TOP)} (COCO "
                         "style, as iNaturalist's train2018.json)")
    images = _checked(path, doc, "images", id=int, file_name=str)
    annotations = _checked(path, doc, "annotations", image_id=int, category_id=int)
    categories = {c["id"] for c in _checked(path, doc, "categories", id=int)}
    return _join(path, images, annotations, categories)


def _checked(path, doc: dict, key: str, **want) -> list[dict]:
    """``doc[key]``, each entry an object whose ``want`` fields have the right JSON type."""
    names = {int: "an integer", str: "a string"}
    for i, entry in enumerate(doc[key]):
        for field, kind in want.items():
            value = entry.get(field) if isinstance(entry, dict) else None
            # bool is an int to Python, never an id to JSON
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(f"{path}: {key}[{i}] has no {field!r} that is {names[kind]} "
                                 f"(found {value!r})")
    return doc[key]


def _join(path, images: list[dict], annotations: list[dict], categories: set[int]):
    unknown = [(i, a) for i, a in enumerate(annotations) if a["category_id"] not in categories]
    if unknown:
        i, a = unknown[0]
        raise ValueError(f"{path}: {len(unknown)} annotation(s) with a category_id not in its "
                         f"{len(categories)} categories, first: annotations[{i}] (image_id "
                         f"{a['image_id']}) has category_id {a['category_id']}")
    label: dict[int, int] = {}
    for i, a in enumerate(annotations):
        if a["image_id"] in label:
            raise ValueError(f"{path}: image_id {a['image_id']} has a second annotation, "
                             f"annotations[{i}]; want one label per image")
        label[a["image_id"]] = a["category_id"]
    ids: set[int] = set()
    for i, im in enumerate(images):
        if im["id"] in ids:
            raise ValueError(f"{path}: images[{i}] repeats image id {im['id']}")
        ids.add(im["id"])
    orphans = [(i, a["image_id"]) for i, a in enumerate(annotations) if a["image_id"] not in ids]
    if orphans:
        raise ValueError(f"{path}: {len(orphans)} annotation(s) of an image not in 'images', "
                         f"first: annotations[{orphans[0][0]}] has image_id {orphans[0][1]}")
    unlabelled = [im for im in images if im["id"] not in label]
    if unlabelled:
        im = unlabelled[0]
        raise ValueError(f"{path}: {len(unlabelled)} image(s) without an annotation, first: "
                         f"image id {im['id']} '{im['file_name']}'")
    return [im["file_name"] for im in images], [label[im["id"]] for im in images]
