"""Parsers for the VoxCeleb1 voice-face protocol files of the field.

Three kinds of file fix how cross-modal models are scored on VoxCeleb1:

* verification lists ``veriflist_test_{random,G,N,A,GNA}_{seenheard,unseenunheard}.txt``
  (Learnable PINs): CSV ``id,voice-speaker-id,face-speaker-id,label,voice-path,face-path``
  whose voice paths are ``<name>/<ytid>_<nnnnnnn>.wav`` and face paths
  ``<name>/<ytid>/<frame>.jpg`` -> :class:`VerificationList`;
* 1:N matching trials ``matching_{v2f,f2v}_{U,G,N,GN}.csv``: space separated
  ``probe true-match impostor...`` in official paths -> :class:`MatchingList`;
* retrieval galleries ``wav_20k.csv`` / ``jpg_20k.csv``: tab separated
  ``VoxCeleb1 ID`` + official path -> :class:`RetrievalGallery`.

Every path is converted to the dataset-root-relative form that the manifest
uses in its ``relpath`` column (``wav/<id>/<video>/<nnnnn>.wav``,
``unzippedFaces/<name>/1.6/<video>/<frame>.jpg``), so :func:`manifest_rows`
joins protocol rows to manifest rows. Identities are VoxCeleb1 IDs, derived
through the meta table (faces and veriflist voices are named by VGGFace1
name).

Parsing never touches the samples. :func:`resolve` (or ``root=`` in a
reader) checks which referenced files exist under a dataset root, attaches a
:class:`Resolution` (per-row ``present`` mask, ``missing`` paths) and warns
with the counts; rows are only ever dropped explicitly, with ``subset``.
Malformed lines raise ValueError naming the file and line number.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterator, TypeVar

import numpy as np
import pandas as pd

from vfcross.data.voxceleb import (
    FACE_EXTENSIONS,
    FACE_VERSION,
    VOICE_EXTENSIONS,
    face_relpath,
    read_meta,
    voice_relpath,
)

MetaLike = pd.DataFrame | str | os.PathLike

VERIFLIST_HEADER = ("id", "voice-speaker-id", "face-speaker-id", "label", "voice-path", "face-path")
#: Veriflist voice naming ``<name>/<ytid>_<nnnnnnn>.wav``; ytids may contain '_'.
_VERIF_VOICE = re.compile(r"(?P<name>[^/]+)/(?P<video>[^/]+)_(?P<clip>\d+)\.wav")
_VERIF_NAME = re.compile(r"veriflist_test_(?P<name>.+?)_(?:seenheard|unseenunheard)")
_MATCHING_NAME = re.compile(r"matching_(?:v2f|f2v)_(?P<name>.+)")


class _Malformed(ValueError):
    """A protocol line that cannot be parsed; the reader adds file and line."""


@dataclass(frozen=True, eq=False)
class Resolution:
    """Which referenced files exist under a dataset root.

    ``present[i]`` is True when every path of row i exists; ``missing`` lists
    the referenced root-relative paths that do not, sorted and unique.
    """

    root: str
    present: np.ndarray
    missing: tuple[str, ...]


class _Rows:
    """Shared behaviour of the protocol tables: per-row arrays, subset, paths.

    Subclasses name their per-row array fields in ``_ROW_FIELDS`` (first axis
    = row) and, among them, the path fields in ``_PATH_FIELDS``.
    """

    _ROW_FIELDS: ClassVar[tuple[str, ...]]
    _PATH_FIELDS: ClassVar[tuple[str, ...]]
    resolution: Resolution | None

    def __post_init__(self) -> None:
        """Check that all per-row arrays agree in length and freeze them."""
        lengths = {name: len(getattr(self, name)) for name in self._ROW_FIELDS}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"{type(self).__name__}: per-row fields differ in length: {lengths}")
        for name in self._ROW_FIELDS:
            getattr(self, name).flags.writeable = False

    def __len__(self) -> int:
        return len(getattr(self, self._ROW_FIELDS[0]))

    def path_matrix(self) -> np.ndarray:
        """All root-relative paths of each row, shape (rows, paths per row)."""
        columns = [getattr(self, name) for name in self._PATH_FIELDS]
        columns = [c if c.ndim == 2 else c[:, np.newaxis] for c in columns]
        return np.concatenate(columns, axis=1)

    def subset(self: _T, rows: np.ndarray) -> _T:
        """A copy restricted to ``rows`` (boolean mask or indices), resolution included.

        Typical use: ``lst.subset(lst.resolution.present)`` keeps the rows
        whose files all exist, the explicit way to drop the others.
        """
        rows = np.asarray(rows)
        changes = {name: getattr(self, name)[rows] for name in self._ROW_FIELDS}
        if self.resolution is not None:
            kept = dataclasses.replace(self, **changes, resolution=None)
            referenced = set(np.unique(kept.path_matrix()).tolist())
            changes["resolution"] = Resolution(
                root=self.resolution.root,
                present=self.resolution.present[rows],
                missing=tuple(p for p in self.resolution.missing if p in referenced),
            )
        return dataclasses.replace(self, **changes)


_T = TypeVar("_T", bound=_Rows)


@dataclass(frozen=True, eq=False)
class VerificationList(_Rows):
    """Voice-face verification pairs; ``labels`` 1 = same identity.

    ``name`` is the demographic criterion (random, G, N, A, GNA) for files
    named as in the official release, otherwise the file stem.
    """

    name: str
    source: str
    voice_paths: np.ndarray
    face_paths: np.ndarray
    labels: np.ndarray
    voice_identities: np.ndarray
    face_identities: np.ndarray
    resolution: Resolution | None = None

    _ROW_FIELDS: ClassVar = ("voice_paths", "face_paths", "labels", "voice_identities", "face_identities")
    _PATH_FIELDS: ClassVar = ("voice_paths", "face_paths")


@dataclass(frozen=True, eq=False)
class MatchingList(_Rows):
    """1:N matching trials: for each probe, N candidates of the other modality.

    ``direction`` is 'v2f' (voice probe, face candidates) or 'f2v'.
    ``candidates`` has shape (trials, N) and column 0 is the true match, as
    :func:`vfcross.metrics.matching_accuracy` expects.
    """

    direction: str
    name: str
    source: str
    probes: np.ndarray
    candidates: np.ndarray
    probe_identities: np.ndarray
    candidate_identities: np.ndarray
    resolution: Resolution | None = None

    _ROW_FIELDS: ClassVar = ("probes", "candidates", "probe_identities", "candidate_identities")
    _PATH_FIELDS: ClassVar = ("probes", "candidates")


@dataclass(frozen=True, eq=False)
class RetrievalGallery(_Rows):
    """A retrieval gallery of one modality ('voice' | 'face') with its identities."""

    modality: str
    name: str
    source: str
    paths: np.ndarray
    identities: np.ndarray
    resolution: Resolution | None = None

    _ROW_FIELDS: ClassVar = ("paths", "identities")
    _PATH_FIELDS: ClassVar = ("paths",)


@dataclass(frozen=True)
class _Names:
    """What the parsers need of the meta table: name -> ID, and the known IDs."""

    identity_of: dict[str, str]
    identities: frozenset[str]

    @classmethod
    def of(cls, meta: MetaLike) -> _Names:
        """Index a meta table, or read it first when given its path."""
        table = meta if isinstance(meta, pd.DataFrame) else read_meta(meta)
        identity_of = dict(zip(table["name"].tolist(), table["identity"].tolist()))
        return cls(identity_of, frozenset(identity_of.values()))

    def identity(self, name: str) -> str:
        """VoxCeleb1 ID of a VGGFace1 name; malformed if the meta table lacks it."""
        if name not in self.identity_of:
            raise _Malformed(f"name {name!r} is not in the meta table")
        return self.identity_of[name]


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) for the non-blank lines of a text file."""
    if not path.is_file():
        raise FileNotFoundError(f"protocol file not found: {path}")
    with path.open(encoding="utf-8-sig") as handle:
        for lineno, line in enumerate(handle, start=1):
            if line.strip():
                yield lineno, line.rstrip("\r\n")


def _official_path(path: str, names: _Names) -> tuple[str, str, str]:
    """Parse an official relative path into (root-relative path, modality, identity).

    Voices are ``<id>/<video>/<clip>.wav``, faces ``<name>/1.6/<video>/<frame>.jpg``.
    """
    parts = path.split("/")
    suffix = Path(path).suffix.lower()
    if suffix in VOICE_EXTENSIONS and len(parts) == 3 and all(parts):
        if parts[0] not in names.identities:
            raise _Malformed(f"identity {parts[0]!r} is not in the meta table")
        return voice_relpath(*parts), "voice", parts[0]
    if suffix in FACE_EXTENSIONS and len(parts) == 4 and parts[1] == FACE_VERSION and all(parts):
        return face_relpath(parts[0], parts[2], parts[3]), "face", names.identity(parts[0])
    raise _Malformed(
        f"{path!r} is not an official VoxCeleb1 path "
        f"('<id>/<video>/<n>.wav' or '<name>/{FACE_VERSION}/<video>/<frame>.jpg')"
    )


def _veriflist_voice(path: str, names: _Names) -> tuple[str, str]:
    """Map ``<name>/<ytid>_<nnnnnnn>.wav`` to (``wav/<id>/<ytid>/<nnnnn>.wav``, id)."""
    match = _VERIF_VOICE.fullmatch(path)
    if match is None:
        raise _Malformed(f"voice path {path!r} is not '<name>/<ytid>_<nnnnnnn>.wav'")
    clip = int(match["clip"])
    if clip > 99999:
        raise _Malformed(f"clip number of {path!r} does not fit the official 5-digit naming")
    identity = names.identity(match["name"])
    return voice_relpath(identity, match["video"], f"{clip:05d}.wav"), identity


def _veriflist_face(path: str, names: _Names) -> tuple[str, str]:
    """Map ``<name>/<ytid>/<frame>.jpg`` to (``unzippedFaces/<name>/1.6/<ytid>/<frame>.jpg``, id)."""
    parts = path.split("/")
    if len(parts) != 3 or not all(parts) or Path(path).suffix.lower() not in FACE_EXTENSIONS:
        raise _Malformed(f"face path {path!r} is not '<name>/<ytid>/<frame>.jpg'")
    return face_relpath(*parts), names.identity(parts[0])


def _located(path: Path, lineno: int, error: _Malformed) -> ValueError:
    """The error of a malformed line, naming file and line."""
    return ValueError(f"{path}, line {lineno}: {error}")


def read_verification_list(
    path: str | os.PathLike, meta: MetaLike, root: str | os.PathLike | None = None
) -> VerificationList:
    """Parse a Learnable-PINs verification list.

    ``meta`` (a :func:`~vfcross.data.voxceleb.read_meta` table or the path of
    ``vox1_meta.csv``) maps the VGGFace1 names in the file to VoxCeleb1 IDs,
    which the official voice paths need: ``A.R._Rahman/gaQqIoV_aLY_0000001.wav``
    becomes ``wav/id10002/gaQqIoV_aLY/00001.wav``. A label that disagrees with
    the identities of its pair is an error. With ``root``, the result is
    :func:`resolve`-d against that dataset.
    """
    path = Path(path)
    names = _Names.of(meta)
    columns: dict[str, list] = {name: [] for name in VerificationList._ROW_FIELDS}
    with_header = iter(_lines(path))
    first = next(with_header, None)
    header = tuple(f.strip() for f in first[1].split(",")) if first else ()
    if header != VERIFLIST_HEADER:
        raise ValueError(f"{path}, line {first[0] if first else 1}: expected header {','.join(VERIFLIST_HEADER)}")
    for lineno, line in with_header:
        try:
            fields = [f.strip() for f in next(csv.reader([line]))]
            if len(fields) != len(VERIFLIST_HEADER):
                raise _Malformed(f"expected {len(VERIFLIST_HEADER)} comma-separated fields, got {len(fields)}")
            if fields[3] not in ("0", "1"):
                raise _Malformed(f"label must be 0 or 1, got {fields[3]!r}")
            voice, voice_id = _veriflist_voice(fields[4], names)
            face, face_id = _veriflist_face(fields[5], names)
            if int(fields[3]) != (voice_id == face_id):
                raise _Malformed(f"label {fields[3]} contradicts identities {voice_id} (voice), {face_id} (face)")
        except _Malformed as error:
            raise _located(path, lineno, error) from None
        for name, value in zip(columns, (voice, face, int(fields[3]), voice_id, face_id)):
            columns[name].append(value)
    match = _VERIF_NAME.fullmatch(path.stem)
    arrays = {name: np.array(values, dtype=np.int64 if name == "labels" else str) for name, values in columns.items()}
    parsed = VerificationList(name=match["name"] if match else path.stem, source=str(path), **arrays)
    return parsed if root is None else resolve(parsed, root)


def _matching_row(fields: list[str], names: _Names) -> tuple[list[str], list[str], str]:
    """Parse one matching trial into (paths, identities, direction); check the true match."""
    parsed = [_official_path(f, names) for f in fields]
    paths, modalities, identities = (list(column) for column in zip(*parsed))
    if len(set(modalities[1:])) != 1 or modalities[0] == modalities[1]:
        raise _Malformed(f"probe and candidates must be one modality against the other, got {modalities}")
    if identities[1] != identities[0]:
        raise _Malformed(f"true match {fields[1]!r} is not of the probe's identity {identities[0]}")
    if identities[0] in identities[2:]:
        raise _Malformed(f"an impostor has the probe's identity {identities[0]}")
    return paths, identities, "v2f" if modalities[0] == "voice" else "f2v"


def read_matching_list(
    path: str | os.PathLike, meta: MetaLike, root: str | os.PathLike | None = None
) -> MatchingList:
    """Parse a 1:N matching file (``probe true-match impostor...`` per line).

    Every line must have the same number (>= 3) of space-separated official
    paths; the probe's modality sets the direction, which must be the same
    throughout. The true match must share the probe's identity and no
    impostor may. ``meta`` maps face names to VoxCeleb1 IDs. With ``root``,
    the result is :func:`resolve`-d against that dataset.
    """
    path = Path(path)
    names = _Names.of(meta)
    rows: list[list[str]] = []
    row_identities: list[list[str]] = []
    direction = None
    for lineno, line in _lines(path):
        fields = line.split()
        try:
            if len(fields) < 3 or (rows and len(fields) != len(rows[0])):
                expected = len(rows[0]) if rows else "at least 3"
                raise _Malformed(f"expected {expected} space-separated paths, got {len(fields)}")
            paths, identities, row_direction = _matching_row(fields, names)
            if direction not in (None, row_direction):
                raise _Malformed(f"direction {row_direction} differs from the file's {direction}")
        except _Malformed as error:
            raise _located(path, lineno, error) from None
        direction = row_direction
        rows.append(paths)
        row_identities.append(identities)
    if direction is None:
        raise ValueError(f"{path}: no trials")
    match = _MATCHING_NAME.fullmatch(path.stem)
    table = np.array(rows, dtype=str)
    identities = np.array(row_identities, dtype=str)
    parsed = MatchingList(
        direction=direction,
        name=match["name"] if match else path.stem,
        source=str(path),
        probes=table[:, 0],
        candidates=table[:, 1:],
        probe_identities=identities[:, 0],
        candidate_identities=identities[:, 1:],
    )
    return parsed if root is None else resolve(parsed, root)


def read_retrieval_gallery(
    path: str | os.PathLike, modality: str, meta: MetaLike, root: str | os.PathLike | None = None
) -> RetrievalGallery:
    """Parse a retrieval gallery (header, then ``<VoxCeleb1 ID>\\t<official path>``).

    ``modality`` ('voice' for wav_20k.csv, 'face' for jpg_20k.csv) is checked
    against every path, and each path's identity (through ``meta`` for face
    names) against the ID column. With ``root``, the result is
    :func:`resolve`-d against that dataset.
    """
    if modality not in ("voice", "face"):
        raise ValueError(f"modality must be 'voice' or 'face', got {modality!r}")
    path = Path(path)
    names = _Names.of(meta)
    lines = iter(_lines(path))
    first = next(lines, None)
    if first is None or first[1].split("\t")[0].strip().lower() != "voxceleb1 id":
        raise ValueError(f"{path}, line {first[0] if first else 1}: expected header 'VoxCeleb1 ID<TAB><path column>'")
    paths, identities = [], []
    for lineno, line in lines:
        fields = [f.strip() for f in line.split("\t")]
        try:
            if len(fields) != 2:
                raise _Malformed(f"expected 2 tab-separated fields, got {len(fields)}")
            relpath, found, identity = _official_path(fields[1], names)
            if found != modality:
                raise _Malformed(f"{fields[1]!r} is a {found} path in a {modality} gallery")
            if identity != fields[0]:
                raise _Malformed(f"{fields[1]!r} belongs to {identity}, not {fields[0]}")
        except _Malformed as error:
            raise _located(path, lineno, error) from None
        paths.append(relpath)
        identities.append(identity)
    parsed = RetrievalGallery(
        modality=modality,
        name=path.stem,
        source=str(path),
        paths=np.array(paths, dtype=str),
        identities=np.array(identities, dtype=str),
    )
    return parsed if root is None else resolve(parsed, root)


def resolve(table: _T, root: str | os.PathLike) -> _T:
    """Check which files of a protocol table exist under dataset ``root``.

    Returns a copy with a :class:`Resolution` attached (rows are kept; drop
    incomplete ones explicitly with ``table.subset(table.resolution.present)``)
    and warns with the counts when anything is missing.
    """
    root_path = Path(os.path.abspath(os.path.expanduser(root)))
    if not root_path.is_dir():
        raise FileNotFoundError(f"dataset root not found: {root_path}")
    matrix = table.path_matrix()
    unique, inverse = np.unique(matrix, return_inverse=True)
    exists = np.array([(root_path / p).is_file() for p in unique.tolist()], dtype=bool)
    present = exists[inverse.reshape(matrix.shape)].all(axis=1)
    present.flags.writeable = False
    missing = tuple(unique[~exists].tolist())
    if missing:
        warnings.warn(
            f"{table.source}: {len(missing)} of {len(unique)} referenced files are missing under "
            f"{root_path}; {int((~present).sum())} of {len(table)} rows are incomplete "
            "(kept; see .resolution, drop with .subset(.resolution.present))",
            stacklevel=2,
        )
    return dataclasses.replace(table, resolution=Resolution(str(root_path), present, missing))


def manifest_rows(paths: np.ndarray, manifest: pd.DataFrame) -> np.ndarray:
    """Positions in ``manifest`` of root-relative ``paths`` (any shape); -1 where absent.

    The protocol tables' paths are the manifest's ``relpath`` strings, so
    e.g. ``embeddings[manifest_rows(lst.voice_paths, manifest)]`` lines up
    features with pairs once every position is >= 0.
    """
    index = pd.Index(manifest["relpath"].astype(str))
    if not index.is_unique:
        raise ValueError("manifest relpath values are not unique")
    paths = np.asarray(paths)
    return index.get_indexer(paths.ravel()).reshape(paths.shape)
