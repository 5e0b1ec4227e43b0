"""The data fingerprint: which training examples (and labels) a trial used, and from which
source files (docs/data.md, "Data fingerprint", says how another codebase computes it).

A trial's training set is hashed as one text (UTF-8; ASCII for every shipped dataset),
sha256, the first 12 hex digits kept::

    elm-data-fingerprint v1
    source <name> <sha256 of the source's bytes>        one line per source, in read order
    train <N>
    <index> <label>                                     N lines, by ascending index

``index`` is the example's position in the source's training split (CIFAR-10: the
concatenation of data_batch_1..5), ``label`` its class; the examples are those left after the
long-tail subsampling and the validation hold-out. The source fingerprint is the same hash of
the ``source`` lines alone. Source digests are computed from the bytes the readers read anyway,
once per file per process (cached by path, size and modification time). No torch here.
"""
from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass

import numpy as np

VERSION_LINE = "elm-data-fingerprint v1"
SHORT = 12                       # hex digits kept of each sha256

_DIGESTS: dict[tuple, str] = {}  # (real path, size, mtime_ns) -> sha256 hex of its content


@dataclass(frozen=True)
class Source:
    """One source of a dataset as the fingerprint names it: ``name`` (e.g.
    ``cifar-10-batches-py/data_batch_1``), the sha256 of its content, and where it was read
    (``path`` and ``stamp`` = (size, mtime_ns); None for a generator's parameters)."""
    name: str
    digest: str
    path: str | None = None
    stamp: tuple | None = None

    def line(self) -> str:
        return f"source {self.name} {self.digest}"

    def changed(self) -> bool:
        """The file is no longer the one read (gone, or another size or mtime)."""
        if self.path is None:
            return False
        try:
            return _stamp(self.path) != self.stamp
        except OSError:
            return True


def _stamp(path: str) -> tuple:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def read_source(path, name: str) -> tuple[bytes, Source]:
    """(the content of ``path``, its Source): a ``.gz`` file is decompressed, and its digest is
    of the decompressed content (a gzipped and a plain copy of one file agree). The digest is
    computed from the bytes returned, once per (path, size, mtime) in this process."""
    real = os.path.realpath(os.fspath(path))
    stamp = _stamp(real)
    if os.fspath(path).endswith(".gz"):
        with gzip.open(real, "rb") as fh:
            data = fh.read()
    else:
        with open(real, "rb") as fh:
            data = fh.read()
    key = (real, *stamp)
    if key not in _DIGESTS:
        _DIGESTS[key] = hashlib.sha256(data).hexdigest()
    return data, Source(name, _DIGESTS[key], real, stamp)


def file_source(path, name: str) -> Source:
    """The Source of a file read elsewhere (a split list): its digest from the cache when the
    file is unchanged since, else read once here."""
    real = os.path.realpath(os.fspath(path))
    key = (real, *_stamp(real))
    if key in _DIGESTS:
        return Source(name, _DIGESTS[key], real, key[1:])
    return read_source(real, name)[1]


def generator_source(name: str, params: dict) -> Source:
    """A generated dataset's Source: the sha256 of its parameters written as sorted
    ``key=value`` lines (no file is read)."""
    text = "".join(f"{k}={params[k]}\n" for k in sorted(params))
    return Source(name, hashlib.sha256(text.encode()).hexdigest())


def fingerprint_text(sources, indices, labels) -> str:
    """The exact text whose sha256 is the fingerprint (module docstring)."""
    idx = np.asarray(indices, dtype=np.int64)
    lab = np.asarray(labels, dtype=np.int64)
    if idx.shape != lab.shape:
        raise ValueError(f"{idx.shape[0]} indices but {lab.shape[0]} labels")
    order = np.argsort(idx, kind="stable")
    head = [VERSION_LINE, *(s.line() for s in sources), f"train {idx.shape[0]}"]
    body = "".join(f"{i} {y}\n" for i, y in zip(idx[order].tolist(), lab[order].tolist()))
    return "\n".join(head) + "\n" + body


def data_fingerprint(sources, indices, labels) -> tuple[str, str]:
    """(data fingerprint, source fingerprint), 12 hex digits each, of the training examples
    ``indices`` (positions in the source's training split) with ``labels``, read from
    ``sources`` (a list of Source, in read order)."""
    text = fingerprint_text(sources, indices, labels)
    src = "".join(s.line() + "\n" for s in sources)
    return (hashlib.sha256(text.encode("utf-8")).hexdigest()[:SHORT],
            hashlib.sha256(src.encode("utf-8")).hexdigest()[:SHORT])


def row_fields(data) -> dict:
    """The fingerprint fields of a trial's rows, from its built data (TrialData or FileData);
    none for data built without them (benchmarks' hand-made TrialData)."""
    fp = getattr(data, "fingerprint", "")
    return {"data_fingerprint": fp,
            "data_source_fingerprint": getattr(data, "source_fingerprint", "")} if fp else {}
