"""Shared fixtures. Ray fixtures start a real local Ray and always shut it down."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


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


@pytest.fixture(scope="session")
def places_tree(tmp_path_factory):
    return fabricate_places_tree(tmp_path_factory.mktemp("places"))
