"""The one reader of the official VoxCeleb1 layout (``wav/``, ``unzippedFaces/``, ``vox1_meta.csv``).

:func:`scan_dataset` turns a dataset into a manifest, one row per sample, and a table of every file it left out with the
reason. Voices (by VoxCeleb1 ID) and faces (by VGGFace1 name) are tied through the meta table, names compared in Unicode
NFC; ``relpath`` (root-relative) is the join key with the protocol files. The scan works a folder at a time. The layout
and rules are in docs/data.md."""

from __future__ import annotations

import os
import unicodedata
import warnings
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from vfcross.config import Split, choices

WAV_DIR = "wav"
FACE_DIR = "unzippedFaces"
#: The sub-folder between a face identity and its videos in the VGGFace1 release.
FACE_VERSION = "1.6"
META_FILE = "vox1_meta.csv"
SPLITS_FILE = "identity_splits.txt"
#: Optional per-sample language table (written by bilingual synthetic populations; VoxCeleb1 has none).
LANGUAGES_FILE = "languages.csv"

VOICE_EXTENSIONS = frozenset({".wav"})
FACE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png"})

#: Identity-split codes of the Learnable-PINs split file, spelled out (never derived from the order of Split).
SPLIT_CODES: dict[str, str] = {"1": "train", "2": "val", "3": "seen_heard", "4": "test"}
if set(SPLIT_CODES.values()) != set(choices(Split)):
    raise RuntimeError(f"vfcross.data.voxceleb.SPLIT_CODES names {sorted(SPLIT_CODES.values())}, but "
                      f"vfcross.config.Split allows {sorted(choices(Split))}: make them the same splits")

MANIFEST_COLUMNS = ("identity", "name", "modality", "path", "relpath", "video", "split", "gender", "nationality",
                    "age", "language")
SKIPPED_COLUMNS = ("path", "identity", "modality", "reason")

REASON_NO_META = "no meta row for identity"
REASON_NO_VOICE = "identity has no voice samples"
REASON_NO_FACE = "identity has no face samples"
REASON_UNEXPECTED = "unexpected file"
REASON_UNLISTED = "identity not in the split file"

#: Meta-table headers (compared case-insensitively after stripping) and the column names :func:`read_meta` gives.
_META_REQUIRED = {"voxceleb1 id": "identity", "vggface1 id": "name", "gender": "gender", "nationality": "nationality"}
_META_OPTIONAL = {"set": "set", "age": "age"}
META_COLUMNS = ("identity", "name", "gender", "nationality", "set", "age")


def nfc(text: str) -> str:
    """``text`` in Unicode normal form C, the form names are compared in."""
    return unicodedata.normalize("NFC", text)


def voice_relpath(identity: str, video: str, clip: str) -> str:
    """Root-relative path of a voice clip, e.g. ``wav/id10001/abc/00001.wav``."""
    return f"{WAV_DIR}/{identity}/{video}/{clip}"


def face_relpath(name: str, video: str, frame: str) -> str:
    """Root-relative path of a face frame, e.g. ``unzippedFaces/A_B/1.6/abc/0000375.jpg``."""
    return f"{FACE_DIR}/{name}/{FACE_VERSION}/{video}/{frame}"


def read_meta(path: str | os.PathLike) -> pd.DataFrame:
    """A ``vox1_meta.csv``-style table as ``identity, name, gender, nationality, set, age`` strings (NA if empty).
    ValueError naming the file (and line) for missing columns, a wrong field count, or an identity or name listed twice
    (voices and faces could then not be paired)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"meta table not found: {path}")
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    header = [h.strip() for h in lines[0].rstrip().split("\t")] if lines else []
    known = {**_META_REQUIRED, **_META_OPTIONAL}
    positions = {known[h.lower()]: i for i, h in enumerate(header) if h.lower() in known}
    missing = [h for h, col in _META_REQUIRED.items() if col not in positions]
    if missing:
        raise ValueError(f"{path}: meta table lacks required column(s) {missing} (found {header}); expected "
                         "tab-separated 'VoxCeleb1 ID, VGGFace1 ID, Gender, Nationality, Set[, Age]'")
    last_required = max(positions[col] for col in _META_REQUIRED.values())
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.rstrip().split("\t")]
        if len(fields) > len(header) or len(fields) <= last_required:
            raise ValueError(f"{path}, line {lineno}: expected {len(header)} tab-separated fields, got {len(fields)}")
        rows.append({col: fields[i] if i < len(fields) else "" for col, i in positions.items()})
    meta = pd.DataFrame(rows, columns=list(META_COLUMNS)).astype("string").replace("", pd.NA)
    meta[["identity", "name"]] = meta[["identity", "name"]].apply(lambda col: col.map(nfc, na_action="ignore"))
    for col in ("identity", "name"):
        dup = meta[col][meta[col].duplicated()]
        if len(dup):
            raise ValueError(f"{path}: {col} listed more than once: {sorted(dup.unique())[:5]}")
        if meta[col].isna().any():
            raise ValueError(f"{path}: a row has an empty {col}")
    return meta


def text_lines(path: str | os.PathLike, what: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of the non-blank lines of the text file ``path``, a ``what`` (named if it is missing)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    with path.open(encoding="utf-8-sig") as handle:
        yield from ((n, line.rstrip("\r\n")) for n, line in enumerate(handle, start=1) if line.strip())


def read_identity_splits(path: str | os.PathLike) -> dict[str, str]:
    """An identity-split file (``<name> <code>`` lines, :data:`SPLIT_CODES`) as ``{VGGFace1 name (NFC): split}``.
    ValueError naming the file and line for malformed lines, unknown codes, or a name listed twice."""
    splits: dict[str, str] = {}
    for lineno, line in text_lines(path, "identity-split file"):
        fields = line.split()
        if len(fields) != 2 or fields[1] not in SPLIT_CODES:
            raise ValueError(f"{path}, line {lineno}: expected '<name> <code>' with code in {sorted(SPLIT_CODES)}, "
                             f"got {line!r}")
        name = nfc(fields[0])
        if name in splits:
            raise ValueError(f"{path}, line {lineno}: {fields[0]!r} listed twice")
        splits[name] = SPLIT_CODES[fields[1]]
    return splits


def read_languages(path: str | os.PathLike) -> dict[str, str]:
    """A ``languages.csv`` table (header ``relpath,language``) as ``{relpath: language}``. ValueError naming the file
    for a wrong header, an empty field or a path listed twice."""
    path = Path(path)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(table.columns) != ["relpath", "language"]:
        raise ValueError(f"{path}: expected the header 'relpath,language', got {','.join(table.columns)!r}")
    empty = table[(table["relpath"] == "") | (table["language"] == "")]
    if len(empty):
        raise ValueError(f"{path}, line {empty.index[0] + 2}: empty relpath or language")
    repeated = table["relpath"][table["relpath"].duplicated()]
    if len(repeated):
        raise ValueError(f"{path}: {repeated.iloc[0]!r} is listed twice")
    return dict(zip(table["relpath"], table["language"]))


def _walk_files(top: Path) -> list[tuple[str, ...]]:
    """All files under ``top`` as path parts relative to it, symlinks followed."""
    return [(*rel, f) for _, rel, files in _walk_folders(top) for f in files]


def _walk_folders(top: Path) -> Iterator[tuple[str, tuple[str, ...], list[str]]]:
    """(folder, parts relative to ``top``, sorted file names) for every folder under ``top``, symlinks followed."""
    start = len(str(top)) + 1
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        dirnames.sort()
        yield dirpath, tuple(dirpath[start:].split(os.sep)) if len(dirpath) >= start else (), sorted(filenames)


def _suffix(name: str) -> str:
    """A file name's extension in lower case, as ``Path(name).suffix.lower()`` (a leading dot starts no suffix)."""
    dot = name.rfind(".")
    return name[dot:].lower() if 0 < dot < len(name) - 1 else ""


def _candidates(root: Path, meta: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """(samples, skipped records) of every file under wav/ and unzippedFaces/, a folder at a time. Samples are well
    placed and known to the meta table; a skipped record's identity is the VoxCeleb1 ID where known, else the folder
    name."""
    name_of = dict(zip(meta["identity"], meta["name"]))
    identity_of = dict(zip(meta["name"], meta["identity"]))
    columns: dict[str, list] = {c: [] for c in ("identity", "name", "modality", "path", "relpath", "video")}
    skipped: list[dict] = []
    for top, modality, extensions in ((WAV_DIR, "voice", VOICE_EXTENSIONS), (FACE_DIR, "face", FACE_EXTENSIONS)):
        known = name_of if modality == "voice" else identity_of
        for folder_path, rel, files in _walk_folders(root / top):
            folder = nfc(rel[0]) if rel else None
            identity = folder if modality == "voice" else identity_of.get(folder, folder)
            placed = len(rel) == (2 if modality == "voice" else 3) and (modality == "voice" or rel[1] == FACE_VERSION)
            good = [f for f in files if placed and _suffix(f) in extensions]
            skipped += [{"path": os.path.join(folder_path, f), "identity": identity, "modality": modality,
                         "reason": REASON_UNEXPECTED} for f in files if not placed or _suffix(f) not in extensions]
            if good and identity not in name_of:
                reason = REASON_NO_META + _near_miss(folder, known)
                skipped += [{"path": os.path.join(folder_path, f), "identity": identity, "modality": modality,
                             "reason": reason} for f in good]
            elif good:
                prefix, rel_prefix = folder_path + os.sep, "/".join((top, *rel)) + "/"
                columns["path"] += [prefix + f for f in good]
                columns["relpath"] += [rel_prefix + f for f in good]
                for column, value in (("identity", identity), ("name", name_of[identity]),
                                      ("modality", modality), ("video", rel[-1])):
                    columns[column] += [value] * len(good)
    return pd.DataFrame(columns), skipped


def _near_miss(folder: str, known: dict[str, str]) -> str:
    """A hint when a folder name matches a meta entry only when case is ignored."""
    folded = folder.casefold()
    close = [name for name in known if name.casefold() == folded]
    return f" (the meta table has {close[0]!r}, which differs only in case)" if close else ""


def _check_root(root: str | os.PathLike) -> Path:
    """Absolute dataset root; clear errors when it is not a VoxCeleb1-layout folder."""
    path = Path(os.path.abspath(os.path.expanduser(root)))
    if not path.is_dir():
        raise FileNotFoundError(f"dataset root not found: {path}")
    if not (path / WAV_DIR).is_dir() and not (path / FACE_DIR).is_dir():
        raise FileNotFoundError(f"{path} is not a dataset in the VoxCeleb1 layout: it has neither {WAV_DIR}/ nor "
                                f"{FACE_DIR}/")
    return path


def manifest_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A reader's rows as a manifest: its columns, typed as strings, in a stable identity/modality/path order."""
    manifest = frame[list(MANIFEST_COLUMNS)].astype("string")
    return manifest.sort_values(["identity", "modality", "path"], kind="stable").reset_index(drop=True)


def _skipped_frame(records: list[dict]) -> pd.DataFrame:
    """The skipped table, typed and sorted by path."""
    frame = pd.DataFrame(records, columns=list(SKIPPED_COLUMNS)).astype("string")
    return frame.sort_values("path", kind="stable").reset_index(drop=True)


def keep_identities_with_both_modalities(frame: pd.DataFrame, skipped: list[dict]) -> pd.DataFrame:
    """The rows of ``frame`` whose identity has faces and voices; each other row goes to ``skipped`` with why."""
    complete = frame["identity"].map(frame.groupby("identity")["modality"].nunique() == 2).astype(bool)
    _skip(frame[~complete], skipped, lambda modality: REASON_NO_FACE if modality == "voice" else REASON_NO_VOICE)
    return frame[complete]


def _skip(rows: pd.DataFrame, skipped: list[dict], reason) -> None:
    """Append a skipped record (path, identity, modality, ``reason(modality)``) for each of ``rows``."""
    skipped += [{"path": path, "identity": identity, "modality": modality, "reason": reason(modality)}
                for path, identity, modality in zip(rows["path"], rows["identity"], rows["modality"])]


def scan_dataset(root: str | os.PathLike, splits_file: str | os.PathLike | None = None,
                 skip_unlisted: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scan a dataset in the VoxCeleb1 layout into (manifest of :data:`MANIFEST_COLUMNS`, skipped files). ``split``
    comes from ``splits_file``, else ``<root>/identity_splits.txt`` if present; only identities with both voices and
    faces enter. ValueError for identities the split file lacks (unless ``skip_unlisted``) and for a dataset with no
    identity left."""
    root = _check_root(root)
    meta = read_meta(root / META_FILE)
    if splits_file is None and (root / SPLITS_FILE).is_file():
        splits_file = root / SPLITS_FILE
    splits = read_identity_splits(splits_file) if splits_file is not None else {}

    frame, skipped = _candidates(root, meta)
    frame = keep_identities_with_both_modalities(frame, skipped)
    if splits_file is not None:
        listed = frame["name"].isin(list(splits))
        unlisted = sorted(frame.loc[~listed, "name"].unique())
        if unlisted and not skip_unlisted:
            raise ValueError(
                f"{len(unlisted)} identit{'y' if len(unlisted) == 1 else 'ies'} of {root} "
                f"{'is' if len(unlisted) == 1 else 'are'} not in the split file {splits_file}: "
                f"{', '.join(unlisted[:10])}{' ...' if len(unlisted) > 10 else ''}; add "
                f"{'it' if len(unlisted) == 1 else 'them'} to the split file, or leave such identities out "
                "(skip_unlisted_identities = True; --skip-unlisted-identities)")
        _skip(frame[~listed], skipped, lambda modality: REASON_UNLISTED)
        frame = frame[listed]
    if frame.empty:
        counts = "; ".join(f"{reason}: {n}" for reason, n in
                           pd.Series([r["reason"] for r in skipped], dtype=object).value_counts().items())
        raise ValueError(f"{root}: no identity with both voice and face samples was found "
                         f"({len(skipped)} file(s) left out{': ' + counts if counts else ''})")

    attributes = meta.set_index("identity")[["gender", "nationality", "age"]]
    manifest = frame.join(attributes, on="identity")
    manifest["split"] = manifest["name"].map(splits)
    languages = read_languages(root / LANGUAGES_FILE) if (root / LANGUAGES_FILE).is_file() else {}
    manifest["language"] = manifest["relpath"].map(languages)
    return manifest_frame(manifest), _skipped_frame(skipped)


def read_dataset(root: str | os.PathLike, splits_file: str | os.PathLike | None = None,
                 skip_unlisted: bool = False) -> pd.DataFrame:
    """The manifest of :func:`scan_dataset`, with one warning summarising the files left out."""
    manifest, skipped = scan_dataset(root, splits_file, skip_unlisted)
    warn_skipped(skipped, f"under {root} were left out of the manifest", "; see vfcross.data.voxceleb.scan_dataset "
                 "for the list")
    return manifest


def warn_skipped(skipped: pd.DataFrame, what: str, hint: str = "") -> None:
    """One warning counting the ``skipped`` files by reason (none if there are none)."""
    if len(skipped):
        counts = "; ".join(f"{reason}: {n}" for reason, n in skipped["reason"].value_counts().sort_index().items())
        warnings.warn(f"{len(skipped)} file(s) {what} ({counts}){hint}", stacklevel=3)
