"""Saving and reading manifests between stages (CSV, with NA and dtypes preserved)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vfcross.data.voxceleb import MANIFEST_COLUMNS
from vfcross.io import atomic_write

#: Text columns of a manifest; read back as pandas "string" so NA stays NA.
TEXT_COLUMNS = (*MANIFEST_COLUMNS, "cache_path")


def write_manifest(manifest: pd.DataFrame, path: str | Path) -> Path:
    """Write ``manifest`` as CSV (parents created, replaced atomically)."""
    path = Path(path)
    atomic_write(path, lambda stream: manifest.to_csv(stream, index=False))
    return path


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest written by :func:`write_manifest` with its dtypes restored."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the preprocessing stage (notebook 01) first")
    header = pd.read_csv(path, nrows=0).columns
    dtypes = {c: "string" for c in TEXT_COLUMNS if c in header}
    table = pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values=[""])
    if "fallback" in table:
        table["fallback"] = table["fallback"].astype(bool)
    return table
