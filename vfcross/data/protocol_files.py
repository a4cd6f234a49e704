"""Parsers of the VoxCeleb1 voice-face protocol files of the field, into one :class:`ListFile` each.

Verification lists ``veriflist_test_*``, 1:N matching trials ``matching_{v2f,f2v}_*.csv`` and retrieval galleries
``wav_20k.csv``/``jpg_20k.csv``: every path becomes the manifest's ``relpath``, every identity a VoxCeleb1 ID; a
malformed line is a ValueError naming the file and line. Parsing never touches the samples."""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from vfcross.data.voxceleb import (FACE_EXTENSIONS, FACE_VERSION, VOICE_EXTENSIONS, face_relpath, read_meta, text_lines,
                                   voice_relpath)

MetaLike = pd.DataFrame | str | os.PathLike
VERIFLIST_HEADER = ("id", "voice-speaker-id", "face-speaker-id", "label", "voice-path", "face-path")
_VERIF_VOICE = re.compile(r"(?P<name>[^/]+)/(?P<video>[^/]+)_(?P<clip>\d+)\.wav")  # ytids may contain '_'
_NAME = re.compile(r"(?:veriflist_test|matching_(?:v2f|f2v))_(?P<name>.+?)(?:_(?:seenheard|unseenunheard))?")


@dataclass(frozen=True, eq=False)
class ListFile:
    """One protocol file: per row its root-relative ``paths`` and their ``identities`` (rows, k), read-only. ``kind``:
    "verification" (voice, face; ``labels``), "matching" (probe, true match, impostors; ``direction`` v2f/f2v) or
    "gallery" (one path; ``direction`` the modality)."""

    kind: str
    name: str
    source: str
    paths: np.ndarray
    identities: np.ndarray
    labels: np.ndarray | None = None
    direction: str = ""

    def __post_init__(self) -> None:
        for array in (self.paths, self.identities, self.labels):
            if array is not None:
                array.flags.writeable = False

    def __len__(self) -> int:
        return len(self.paths)


class _Malformed(ValueError):
    """A protocol line that cannot be parsed; the reader adds file and line."""


class _Names(dict):
    """VGGFace1 name -> VoxCeleb1 ID of a meta table (or of the file it is read from), and the known IDs."""

    def __init__(self, meta: MetaLike) -> None:
        table = meta if isinstance(meta, pd.DataFrame) else read_meta(meta)
        super().__init__(zip(table["name"].tolist(), table["identity"].tolist()))
        self.ids = frozenset(self.values())


def _named(names: _Names, name: str) -> str:
    """VoxCeleb1 ID of a name; malformed if the meta table lacks it."""
    if name not in names:
        raise _Malformed(f"name {name!r} is not in the meta table")
    return names[name]


def _official_path(path: str, names: _Names) -> tuple[str, str, str]:
    """(root-relative path, modality, identity) of ``<id>/<video>/<clip>.wav`` or ``<name>/1.6/<video>/<frame>.jpg``."""
    parts = path.split("/")
    suffix = Path(path).suffix.lower()
    if suffix in VOICE_EXTENSIONS and len(parts) == 3 and all(parts):
        if parts[0] not in names.ids:
            raise _Malformed(f"identity {parts[0]!r} is not in the meta table")
        return voice_relpath(*parts), "voice", parts[0]
    if suffix in FACE_EXTENSIONS and len(parts) == 4 and parts[1] == FACE_VERSION and all(parts):
        return face_relpath(parts[0], parts[2], parts[3]), "face", _named(names, parts[0])
    raise _Malformed(f"{path!r} is not an official VoxCeleb1 path "
                     f"('<id>/<video>/<n>.wav' or '<name>/{FACE_VERSION}/<video>/<frame>.jpg')")


def _parse(path: Path, rows: Iterator[tuple[int, str]], parse_row) -> list:
    """``parse_row(line)`` of every row, a malformed one raising ValueError with file and line."""
    parsed = []
    for lineno, line in rows:
        try:
            parsed.append(parse_row(line))
        except _Malformed as error:
            raise ValueError(f"{path}, line {lineno}: {error}") from None
    return parsed


def _file_name(path: Path) -> str:
    """The list's restriction or group as the official file names say it (else the file stem)."""
    match = _NAME.fullmatch(path.stem)
    return match["name"] if match else path.stem


def read_verification_list(path: str | os.PathLike, meta: MetaLike) -> ListFile:
    """A Learnable-PINs verification list; ``meta`` maps its names to IDs (``A.R._Rahman/gaQqIoV_aLY_0000001.wav``
    becomes ``wav/id10002/gaQqIoV_aLY/00001.wav``). A label contradicting its pair's identities is an error."""
    path, names = Path(path), _Names(meta)
    lines = text_lines(path, "protocol file")
    first = next(lines, None)
    if first is None or tuple(f.strip() for f in first[1].split(",")) != VERIFLIST_HEADER:
        raise ValueError(f"{path}, line {first[0] if first else 1}: expected header {','.join(VERIFLIST_HEADER)}")

    def row(line: str) -> tuple:
        fields = [f.strip() for f in next(csv.reader([line]))]
        if len(fields) != len(VERIFLIST_HEADER):
            raise _Malformed(f"expected {len(VERIFLIST_HEADER)} comma-separated fields, got {len(fields)}")
        if fields[3] not in ("0", "1"):
            raise _Malformed(f"label must be 0 or 1, got {fields[3]!r}")
        voice = _VERIF_VOICE.fullmatch(fields[4])
        if voice is None:
            raise _Malformed(f"voice path {fields[4]!r} is not '<name>/<ytid>_<nnnnnnn>.wav'")
        if int(voice["clip"]) > 99999:
            raise _Malformed(f"clip number of {fields[4]!r} does not fit the official 5-digit naming")
        face = fields[5].split("/")
        if len(face) != 3 or not all(face) or Path(fields[5]).suffix.lower() not in FACE_EXTENSIONS:
            raise _Malformed(f"face path {fields[5]!r} is not '<name>/<ytid>/<frame>.jpg'")
        voice_id, face_id = _named(names, voice["name"]), _named(names, face[0])
        if int(fields[3]) != (voice_id == face_id):
            raise _Malformed(f"label {fields[3]} contradicts identities {voice_id} (voice), {face_id} (face)")
        return (voice_relpath(voice_id, voice["video"], f"{int(voice['clip']):05d}.wav"), face_relpath(*face),
                voice_id, face_id, int(fields[3]))

    table = np.array(_parse(path, lines, row), dtype=object).reshape(-1, 5)
    return ListFile("verification", _file_name(path), str(path), table[:, :2].astype(str), table[:, 2:4].astype(str),
                    table[:, 4].astype(np.int64))


def read_matching_list(path: str | os.PathLike, meta: MetaLike) -> ListFile:
    """A 1:N matching file (``probe true-match impostor...``, the same count per line); the probe's modality sets
    the direction, the same throughout; the true match shares the probe's identity and no impostor does."""
    path, names = Path(path), _Names(meta)
    width, direction = [], []

    def row(line: str) -> list[tuple[str, str, str]]:
        fields = line.split()
        if len(fields) < 3 or (width and len(fields) != width[0]):
            raise _Malformed(f"expected {width[0] if width else 'at least 3'} space-separated paths, got {len(fields)}")
        parsed = [_official_path(f, names) for f in fields]
        modalities, identities = [p[1] for p in parsed], [p[2] for p in parsed]
        if len(set(modalities[1:])) != 1 or modalities[0] == modalities[1]:
            raise _Malformed(f"probe and candidates must be one modality against the other, got {modalities}")
        if identities[1] != identities[0]:
            raise _Malformed(f"true match {fields[1]!r} is not of the probe's identity {identities[0]}")
        if identities[0] in identities[2:]:
            raise _Malformed(f"an impostor has the probe's identity {identities[0]}")
        found = "v2f" if modalities[0] == "voice" else "f2v"
        if direction and found != direction[0]:
            raise _Malformed(f"direction {found} differs from the file's {direction[0]}")
        width[:], direction[:] = [len(fields)], [found]
        return parsed

    rows = _parse(path, text_lines(path, "protocol file"), row)
    if not rows:
        raise ValueError(f"{path}: no trials")
    table = np.array(rows, dtype=str)
    return ListFile("matching", _file_name(path), str(path), table[:, :, 0], table[:, :, 2], direction=direction[0])


def read_retrieval_gallery(path: str | os.PathLike, modality: str, meta: MetaLike) -> ListFile:
    """A retrieval gallery (header, then ``<VoxCeleb1 ID>\\t<official path>``) of ``modality`` ('voice' for
    wav_20k.csv, 'face' for jpg_20k.csv); each path's modality and identity are checked against the row."""
    if modality not in ("voice", "face"):
        raise ValueError(f"modality must be 'voice' or 'face', got {modality!r}")
    path, names = Path(path), _Names(meta)
    lines = text_lines(path, "protocol file")
    first = next(lines, None)
    if first is None or first[1].split("\t")[0].strip().lower() != "voxceleb1 id":
        raise ValueError(f"{path}, line {first[0] if first else 1}: expected header 'VoxCeleb1 ID<TAB><path column>'")

    def row(line: str) -> tuple[str, str]:
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) != 2:
            raise _Malformed(f"expected 2 tab-separated fields, got {len(fields)}")
        relpath, found, identity = _official_path(fields[1], names)
        if found != modality:
            raise _Malformed(f"{fields[1]!r} is a {found} path in a {modality} gallery")
        if identity != fields[0]:
            raise _Malformed(f"{fields[1]!r} belongs to {identity}, not {fields[0]}")
        return relpath, identity

    table = np.array(_parse(path, lines, row), dtype=str).reshape(-1, 2)
    return ListFile("gallery", path.stem, str(path), table[:, :1], table[:, 1:], direction=modality)


def manifest_rows(paths: np.ndarray, manifest: pd.DataFrame) -> np.ndarray:
    """Positions in ``manifest`` of root-relative ``paths`` (any shape); -1 where absent."""
    index = pd.Index(manifest["relpath"].astype(str))
    if not index.is_unique:
        raise ValueError("manifest relpath values are not unique")
    paths = np.asarray(paths)
    return index.get_indexer(paths.ravel()).reshape(paths.shape)
