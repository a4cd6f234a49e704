"""The one reader of the official VoxCeleb1 layout.

Every dataset, VoxCeleb1 itself or the embedded synthetic population, enters
vfcross through this layout::

    <root>/wav/<VoxCeleb1 ID>/<video>/<nnnnn>.wav
    <root>/unzippedFaces/<VGGFace1 name>/1.6/<video>/<frame>.jpg
    <root>/vox1_meta.csv           tab separated: VoxCeleb1 ID, VGGFace1 ID,
                                   Gender, Nationality, Set [, Age]
    <root>/identity_splits.txt     optional: "<VGGFace1 name> <code>" lines
    <root>/languages.csv           optional: "relpath,language" rows, the
                                   spoken language of a clip (or of the
                                   video a face frame comes from)

:func:`scan_dataset` turns it into a *manifest*, one row per sample, and a
table of everything it did not put there and why; :func:`read_dataset` is the
manifest alone. Voices and faces are tied together through the meta table:
voice folders are named by VoxCeleb1 ID, face folders by VGGFace1 name.
Names are compared after Unicode NFC normalisation, so a folder written in
decomposed form (NFD, as some file systems and archivers do) still finds its
meta row and split.

Every identity of the dataset ends in a split or in the skipped table with a
reason; an identity the split file does not list is an error naming it,
unless the caller asks to leave such identities out (``skip_unlisted``).

Sample paths are identified by ``relpath``, the path relative to the dataset
root (``wav/<id>/<video>/<n>.wav``, ``unzippedFaces/<name>/1.6/<video>/<f>.jpg``);
:mod:`vfcross.data.protocol_files` converts every protocol file to the same
strings, so ``relpath`` is the join key between protocols and the manifest.
"""

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
#: The single sub-folder level between a face identity and its videos in the
#: VGGFace1 release that VoxCeleb1 faces come from.
FACE_VERSION = "1.6"
META_FILE = "vox1_meta.csv"
SPLITS_FILE = "identity_splits.txt"
#: Optional per-sample language table (written by bilingual synthetic populations; VoxCeleb1 has none).
LANGUAGES_FILE = "languages.csv"

VOICE_EXTENSIONS = frozenset({".wav"})
FACE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png"})

#: Identity-split codes of the Learnable-PINs split file, spelled out: never derived from the order of
#: :data:`vfcross.config.Split`, so reordering that type cannot move test identities into training.
SPLIT_CODES: dict[str, str] = {"1": "train", "2": "val", "3": "seen_heard", "4": "test"}
if set(SPLIT_CODES.values()) != set(choices(Split)):
    raise RuntimeError(f"vfcross.data.voxceleb.SPLIT_CODES names {sorted(SPLIT_CODES.values())}, but "
                      f"vfcross.config.Split allows {sorted(choices(Split))}: make them the same splits")

MANIFEST_COLUMNS = (
    "identity",
    "name",
    "modality",
    "path",
    "relpath",
    "video",
    "split",
    "gender",
    "nationality",
    "age",
    "language",
)
SKIPPED_COLUMNS = ("path", "identity", "modality", "reason")

REASON_NO_META = "no meta row for identity"
REASON_NO_VOICE = "identity has no voice samples"
REASON_NO_FACE = "identity has no face samples"
REASON_UNEXPECTED = "unexpected file"
REASON_UNLISTED = "identity not in the split file"

#: Meta-table headers (compared case-insensitively after stripping) and the
#: column names :func:`read_meta` gives them.
_META_REQUIRED = {
    "voxceleb1 id": "identity",
    "vggface1 id": "name",
    "gender": "gender",
    "nationality": "nationality",
}
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
    """Read a ``vox1_meta.csv``-style table.

    Returns one row per identity with columns ``identity, name, gender,
    nationality, set, age`` (``string`` dtype). Headers and values are
    stripped of surrounding whitespace (the official file is tab separated
    and some copies carry trailing blanks); empty values become NA. ``Set``
    and ``Age`` are optional: absent, the column is all NA, never guessed.

    Raises FileNotFoundError if the file is missing and ValueError, naming
    the file (and line), if required columns are absent, a line has the wrong
    number of fields, or an identity or name is listed twice (voices and faces
    could then not be paired unambiguously).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"meta table not found: {path}")
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    header = [h.strip() for h in lines[0].rstrip().split("\t")] if lines else []
    known = {**_META_REQUIRED, **_META_OPTIONAL}
    positions = {known[h.lower()]: i for i, h in enumerate(header) if h.lower() in known}
    missing = [h for h, col in _META_REQUIRED.items() if col not in positions]
    if missing:
        raise ValueError(
            f"{path}: meta table lacks required column(s) {missing} "
            f"(found {header}); expected tab-separated 'VoxCeleb1 ID, VGGFace1 ID, "
            "Gender, Nationality, Set[, Age]'"
        )
    last_required = max(positions[col] for col in _META_REQUIRED.values())
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.rstrip().split("\t")]
        if len(fields) > len(header) or len(fields) <= last_required:
            raise ValueError(f"{path}, line {lineno}: expected {len(header)} tab-separated fields, got {len(fields)}")
        rows.append({col: fields[i] if i < len(fields) else "" for col, i in positions.items()})
    meta = pd.DataFrame(rows, columns=list(META_COLUMNS)).astype("string")
    meta = meta.replace("", pd.NA)
    meta[["identity", "name"]] = meta[["identity", "name"]].apply(lambda col: col.map(nfc, na_action="ignore"))
    for col in ("identity", "name"):
        dup = meta[col][meta[col].duplicated()]
        if len(dup):
            raise ValueError(f"{path}: {col} listed more than once: {sorted(dup.unique())[:5]}")
        if meta[col].isna().any():
            raise ValueError(f"{path}: a row has an empty {col}")
    return meta


def read_identity_splits(path: str | os.PathLike) -> dict[str, str]:
    """Read an identity-split file into ``{VGGFace1 name: split}``.

    Each line is ``<name> <code>`` (whitespace separated; trailing blanks, as
    in the official file, are fine) with code 1 = ``train``, 2 = ``val``,
    3 = ``seen_heard``, 4 = ``test`` (unseen-unheard). Names are NFC
    normalised. Raises ValueError naming the file and line for malformed
    lines, unknown codes, or a name listed twice.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"identity-split file not found: {path}")
    splits: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in SPLIT_CODES:
            raise ValueError(
                f"{path}, line {lineno}: expected '<name> <code>' with code in "
                f"{sorted(SPLIT_CODES)}, got {line!r}"
            )
        name = nfc(fields[0])
        if name in splits:
            raise ValueError(f"{path}, line {lineno}: {fields[0]!r} listed twice")
        splits[name] = SPLIT_CODES[fields[1]]
    return splits


def read_languages(path: str | os.PathLike) -> dict[str, str]:
    """Read a ``languages.csv`` table into ``{relpath: language}``.

    A CSV file with the header ``relpath,language`` and one row per sample
    whose language is known (paths relative to the dataset root, as in the
    manifest). Raises ValueError naming the file for a wrong header, an
    empty field or a path listed twice.
    """
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
    """(folder, its parts relative to ``top``, its sorted file names) for every folder under ``top``, symlinks followed."""
    start = len(str(top)) + 1
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        dirnames.sort()
        yield dirpath, tuple(dirpath[start:].split(os.sep)) if len(dirpath) >= start else (), sorted(filenames)


def _suffix(name: str) -> str:
    """A file name's extension in lower case, as ``Path(name).suffix.lower()`` (a leading dot starts no suffix)."""
    dot = name.rfind(".")
    return name[dot:].lower() if 0 < dot < len(name) - 1 else ""


def _candidates(root: Path, meta: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """Classify every file under wav/ and unzippedFaces/.

    Returns (samples, skipped): a frame of the samples well placed in the
    layout and known to the meta table (identity, name, modality, path,
    relpath, video), and skipped records for the rest (wrong place or
    extension, folder absent from the meta table). A skipped record's
    identity is the VoxCeleb1 ID where known, otherwise the folder name as
    found. Work is per folder: a sample costs one path string and one relpath.
    """
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
        raise FileNotFoundError(
            f"{path} is not a dataset in the VoxCeleb1 layout: it has neither "
            f"{WAV_DIR}/ nor {FACE_DIR}/"
        )
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
    """The rows of ``frame`` whose identity has faces and voices; each other row goes to ``skipped``.

    A cross-modal model can neither train nor be scored on a person seen in one
    modality only, so such rows are reported (path, identity, modality and
    :data:`REASON_NO_FACE` / :data:`REASON_NO_VOICE`), never dropped silently.
    """
    complete = frame["identity"].map(frame.groupby("identity")["modality"].nunique() == 2).astype(bool)
    for record in frame[~complete].to_dict("records"):
        reason = REASON_NO_FACE if record["modality"] == "voice" else REASON_NO_VOICE
        skipped.append({key: record[key] for key in ("path", "identity", "modality")} | {"reason": reason})
    return frame[complete]


def scan_dataset(
    root: str | os.PathLike, splits_file: str | os.PathLike | None = None, skip_unlisted: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scan a dataset in the VoxCeleb1 layout into (manifest, skipped).

    ``manifest`` has one row per sample and exactly the columns
    :data:`MANIFEST_COLUMNS`: ``identity`` (VoxCeleb1 ID), ``name`` (VGGFace1
    ID), ``modality`` ('face' | 'voice'), ``path`` (absolute), ``relpath``
    (relative to ``root``, see the module docstring), ``video``, ``split``,
    ``gender``, ``nationality``, ``age``, all of pandas ``string`` dtype,
    sorted by (identity, modality, path), plus ``language``: a sample's
    spoken language from ``<root>/languages.csv`` where the dataset has one
    (:func:`read_languages`; the bilingual synthetic populations do), else NA
    (VoxCeleb1 records none). ``split`` comes from
    ``splits_file``; when that is None, ``<root>/identity_splits.txt`` is
    used if it exists. Without a split file ``split`` is NA; ``age`` is NA
    unless the meta table has an Age value. Nothing is inferred.

    Only identities with both voices and faces enter the manifest, since
    every later stage pairs the two. Everything else is returned in
    ``skipped`` (columns ``path, identity, modality, reason``), one row per
    file, with reason :data:`REASON_UNEXPECTED` (wrong place or extension),
    :data:`REASON_NO_META` (folder absent from the meta table),
    :data:`REASON_NO_VOICE`, :data:`REASON_NO_FACE` or, with
    ``skip_unlisted``, :data:`REASON_UNLISTED`.

    Raises ValueError when the split file does not list some identity of the
    dataset (naming them; ``skip_unlisted=True`` leaves them out instead) and
    when no identity is left at all.
    """
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
        for record in frame[~listed].to_dict("records"):
            skipped.append({key: record[key] for key in ("path", "identity", "modality")} | {"reason": REASON_UNLISTED})
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
    """The manifest of a dataset in the VoxCeleb1 layout (see :func:`scan_dataset`).

    If any file was left out, one warning summarises how many and why; call
    :func:`scan_dataset` for the per-file list.
    """
    manifest, skipped = scan_dataset(root, splits_file, skip_unlisted)
    if len(skipped):
        counts = skipped["reason"].value_counts().sort_index()
        summary = "; ".join(f"{reason}: {n}" for reason, n in counts.items())
        warnings.warn(
            f"{len(skipped)} file(s) under {root} were left out of the manifest ({summary}); "
            "see vfcross.data.voxceleb.scan_dataset for the list",
            stacklevel=2,
        )
    return manifest
