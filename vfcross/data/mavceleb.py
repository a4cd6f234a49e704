"""The MAV-Celeb layout (the FAME challenge's bilingual data) read into the same manifest as VoxCeleb1.

A version folder holds ``voices/<id>/<Language>/<video>/<clip>.wav``, ``faces/<id>[/<Language>]/<video>/<frame>.jpg``, a
meta table ``v<N>_meta.csv`` (``ids,name,gender``) and unlabelled challenge test files named by trial lists
(``<Language>_test.txt``). :func:`scan_mavceleb` reads the identity folders (the test files are skipped with their
reason); :func:`read_trials` reads the trial lists. Details in docs/data.md."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from vfcross.data.voxceleb import (FACE_EXTENSIONS, REASON_UNEXPECTED, _skipped_frame, _walk_files,
                                   keep_identities_with_both_modalities, manifest_frame, read_identity_splits,
                                   text_lines, warn_skipped)

VOICE_DIR = "voices"
FACE_DIR = "faces"
VOICE_EXTENSIONS = frozenset({".wav"})
REASON_TEST_FILE = "unlabelled challenge test file (named by a <Language>_test.txt trial list)"
_GENDERS = {"male": "m", "m": "m", "female": "f", "f": "f"}


def read_meta(path: str | os.PathLike) -> pd.DataFrame:
    """A MAV-Celeb meta table (``ids,name,gender``; name and gender optional) as ``identity, name, gender``. Gender
    ``Male``/``Female`` becomes ``m``/``f``, anything else NA. ValueError naming the file for a missing id column or an
    id listed twice."""
    path = Path(path)
    table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    table.columns = [str(c).strip().lower() for c in table.columns]
    id_column = next((c for c in ("ids", "id", "identity") if c in table.columns), None)
    if id_column is None:
        raise ValueError(f"{path}: the meta table has no 'ids' column (found {list(table.columns)})")
    ids = table[id_column].str.strip()
    if ids.duplicated().any():
        raise ValueError(f"{path}: {ids[ids.duplicated()].iloc[0]!r} is listed twice")
    table = table.reindex(columns=[*table.columns, *{"name", "gender"} - set(table.columns)], fill_value="")
    meta = pd.DataFrame({"identity": ids, "name": table["name"].str.strip().replace("", pd.NA),
                         "gender": table["gender"].str.strip().str.lower().map(_GENDERS)})
    return meta.astype("string")


def find_meta(root: str | os.PathLike) -> Path | None:
    """The meta table of a version folder: ``<root>/v<N>_meta.csv`` or ``<root>/meta.csv`` (None if neither)."""
    root = Path(root)
    found = sorted(root.glob("v*_meta.csv")) + sorted(root.glob("meta.csv"))
    return found[0] if found else None


def _classify(parts: tuple[str, ...], modality: str) -> str | tuple[str | None, str]:
    """(language or None, video) of a sample below voices/ or faces/, or the reason to skip the file."""
    extensions = VOICE_EXTENSIONS if modality == "voice" else FACE_EXTENSIONS
    if Path(parts[-1]).suffix.lower() not in extensions:
        return REASON_UNEXPECTED
    if len(parts) == 2:
        return REASON_TEST_FILE
    if len(parts) == 4:
        return parts[1], parts[2]
    if len(parts) == 3 and modality == "face":
        return None, parts[1]
    return REASON_UNEXPECTED


def scan_mavceleb(root: str | os.PathLike, meta_file: str | os.PathLike | None = None,
                  splits_file: str | os.PathLike | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scan one MAV-Celeb version folder into (manifest, skipped), as :func:`vfcross.data.scan_dataset` does.
    ``meta_file`` defaults to :func:`find_meta`'s; ``splits_file`` names id folders (``id0001 1``), without it ``split``
    is NA. Only identities with both voices and faces enter the manifest."""
    root = Path(os.path.abspath(os.path.expanduser(root)))
    if not (root / VOICE_DIR).is_dir() or not (root / FACE_DIR).is_dir():
        raise FileNotFoundError(f"{root} is not a MAV-Celeb version folder: it needs {VOICE_DIR}/ and {FACE_DIR}/")
    meta_file = find_meta(root) if meta_file is None else Path(meta_file)
    meta = read_meta(meta_file) if meta_file is not None else pd.DataFrame(columns=["identity", "name", "gender"])
    splits = read_identity_splits(splits_file) if splits_file is not None else {}

    samples, skipped = [], []
    for top, modality in ((VOICE_DIR, "voice"), (FACE_DIR, "face")):
        for parts in _walk_files(root / top):
            relpath = "/".join((top, *parts))
            record = {"path": str(root / relpath), "identity": parts[0] if len(parts) > 2 else pd.NA,
                      "modality": modality}
            where = _classify(parts, modality)
            if isinstance(where, str):
                skipped.append({**record, "reason": where})
            else:
                samples.append({**record, "relpath": relpath, "video": where[1], "language": where[0]})

    frame = pd.DataFrame(samples, columns=["identity", "modality", "path", "relpath", "video", "language"])
    frame = keep_identities_with_both_modalities(frame, skipped)

    attributes = meta.set_index("identity")
    frame = frame.assign(name=frame["identity"].map(attributes["name"]).fillna(frame["identity"]),
                         gender=frame["identity"].map(attributes["gender"]),
                         split=frame["identity"].map(splits), nationality=pd.NA, age=pd.NA)
    return manifest_frame(frame), _skipped_frame(skipped)


def read_mavceleb(root: str | os.PathLike, meta_file: str | os.PathLike | None = None,
                  splits_file: str | os.PathLike | None = None) -> pd.DataFrame:
    """The manifest of a MAV-Celeb version folder (:func:`scan_mavceleb`), one warning summarising what was left out."""
    manifest, skipped = scan_mavceleb(root, meta_file, splits_file)
    warn_skipped(skipped, f"under {root} are not manifest samples")
    return manifest


def draw_identity_splits(identities: list[str] | np.ndarray, fractions: tuple[float, float, float],
                         seed: int) -> dict[str, str]:
    """A deterministic train/val/test split of ``identities`` (each split non-empty), from the set and ``seed``.
    MAV-Celeb's own test identities are anonymous, so a local evaluation holds out labelled ones (as FAME did)."""
    ids = sorted(set(identities))
    if len(ids) < 3:
        raise ValueError(f"a train/val/test split needs at least 3 identities, got {len(ids)}")
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    n_val, n_test = (max(1, round(f * len(ids))) for f in fractions[1:])
    order = np.random.default_rng(seed).permutation(len(ids))
    names = ["test"] * n_test + ["val"] * n_val + ["train"] * (len(ids) - n_val - n_test)
    return {ids[i]: names[rank] for rank, i in enumerate(order)}


def read_trials(path: str | os.PathLike) -> pd.DataFrame:
    """A FAME trial list (``<Language>_test.txt``) as columns ``key, voice, face``, in file order. ValueError naming the
    file and line for a row without three fields or a key listed twice."""
    rows = []
    for lineno, line in text_lines(path, "trial list"):
        fields = line.split()
        if len(fields) != 3:
            raise ValueError(f"{path}, line {lineno}: expected '<key> <voice path> <face path>', got {line!r}")
        rows.append(fields)
    trials = pd.DataFrame(rows, columns=["key", "voice", "face"])
    repeated = trials["key"][trials["key"].duplicated()]
    if len(repeated):
        raise ValueError(f"{path}: key {repeated.iloc[0]!r} is listed twice")
    if trials.empty:
        raise ValueError(f"{path}: no trials")
    return trials


def trial_lists(folder: str | os.PathLike) -> dict[str, Path]:
    """The trial lists of a lists folder by test language: ``{"English": .../English_test.txt, ...}``."""
    return {p.name[: -len("_test.txt")]: p for p in sorted(Path(folder).glob("*_test.txt"))}
