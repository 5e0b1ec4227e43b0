"""RawSplits: what a reader returns (uint8 N×C×H×W images, int64 labels, and the sources
read: trainables.data.fingerprint.Source, in read order)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RawSplits:
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    sources: list = field(default_factory=list)
