"""Which data each setting's trials trained on: the data fingerprints (trainables.data.
fingerprint; docs/data.md) per setting (dataset × imbalance × ratio), and the settings whose
trials disagree, with the config fields that differ between them.

Trials with equal fingerprints trained on the same examples with the same labels from the same
source files. A setting whose trials disagree (another img_max, data_seed, validation hold-out
or source files) compares methods across different data; the report flags it.
"""
from __future__ import annotations

import pandas as pd

from analysis.summary import SETTING, setting_label

UNKNOWN = "unknown"
# the fields that choose a trial's training examples (docs/data.md)
DATA_FIELDS = ("img_max", "data_seed", "val_fraction", "data_root", "train_list")


def _label(key) -> str:
    key = key if isinstance(key, tuple) else (key,)
    return setting_label(*key) if len(key) == 3 else " ".join(map(str, key))


def _order(text: str):
    """Numbers in numeric order, before any text."""
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def _differences(part: pd.DataFrame, col: str) -> str:
    """'img_max 40 vs 50; other source files' between the fingerprint groups of a setting."""
    out = []
    for field in DATA_FIELDS:
        if field in part:
            values = part.groupby(col)[field].agg(lambda s: tuple(sorted(set(map(str, s)),
                                                                          key=_order)))
            if values.nunique() > 1:
                out.append(f"{field} " + " vs ".join(
                    "/".join(v) for v in sorted(set(values), key=lambda v: [_order(x)
                                                                             for x in v])))
    if "data_source_fingerprint" in part and \
            part["data_source_fingerprint"].dropna().nunique() > 1:
        out.append("other source files (source fingerprints "
                   + " vs ".join(sorted(part["data_source_fingerprint"].dropna().unique()))
                   + ")")
    return "; ".join(out) or "fields not recorded here"


def fingerprint_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (setting, fingerprint): Setting | Data fingerprint | Sources | Trials |
    Methods | Note ('unknown': trials written before fingerprints were recorded; the note
    flags a setting whose trials disagree and says which fields differ)."""
    cols = ["Setting", "Data fingerprint", "Sources", "Trials", "Methods", "Note"]
    keys = [k for k in SETTING if k in df]
    if df.empty or not keys:
        return pd.DataFrame(columns=cols)
    df = df.assign(_fp=df.get("data_fingerprint", pd.Series(index=df.index, dtype=object))
                   .fillna(UNKNOWN))
    rows = []
    for key, part in df.groupby(keys, sort=False, dropna=False):
        groups = list(part.groupby("_fp", sort=False))
        known = [fp for fp, _ in groups if fp != UNKNOWN]
        note = (f"⚠ trials of this setting trained on {len(known)} different data sets: "
                f"{_differences(part[part['_fp'] != UNKNOWN], '_fp')}"
                if len(known) > 1 else "")
        for fp, g in groups:
            src = g.get("data_source_fingerprint", pd.Series(dtype=object)).dropna().unique()
            rows.append({"Setting": _label(key), "Data fingerprint": fp,
                         "Sources": ", ".join(sorted(src)) or "–", "Trials": str(len(g)),
                         "Methods": ", ".join(dict.fromkeys(g["method"].astype(str)))
                         if "method" in g else "",
                         "Note": note if fp != UNKNOWN else
                         "written before fingerprints were recorded"})
    return pd.DataFrame(rows, columns=cols)


def disagreements(df: pd.DataFrame) -> list[str]:
    """One sentence per setting whose trials trained on different data."""
    table = fingerprint_table(df)
    flagged = table[table["Note"].str.startswith("⚠")].drop_duplicates("Setting")
    return [f"{r.Setting}: {r.Note[2:]}" for r in flagged.itertuples()]


FINGERPRINT_NOTE = ("The data fingerprint is a hash of exactly which training examples (and "
                    "labels) a trial used, after the long-tail subsampling and the "
                    "validation hold-out, and of the source files' checksums; the source "
                    "fingerprint hashes the source files alone. Equal fingerprints: the same "
                    "training data (docs/data.md says how to compute it elsewhere).")
