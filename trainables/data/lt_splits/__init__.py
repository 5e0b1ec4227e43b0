"""The public ImageNet-LT / Places-LT split lists shipped with the project (see README.md)."""
from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    """Names of the shipped lists, e.g. ``Places_LT_train``."""
    return sorted(p.name[: -len(".txt.gz")] for p in HERE.glob("*.txt.gz"))


def shipped_list(name: str) -> Path:
    """Path of a shipped list by name (``Places_LT_train``, with or without ``.txt``)."""
    stem = name.removesuffix(".gz").removesuffix(".txt")
    path = HERE / f"{stem}.txt.gz"
    if not path.is_file():
        raise FileNotFoundError(f"no shipped split list {name!r}; shipped: {', '.join(available())}")
    return path


def expected_sha256() -> dict[str, str]:
    """SHA-256 of each list's uncompressed content, from SHA256SUMS."""
    out = {}
    for line in (HERE / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        out[name] = digest
    return out


def sha256_of(name: str) -> str:
    with gzip.open(shipped_list(name), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
