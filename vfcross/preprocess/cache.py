"""On-disk cache of preprocessed samples: packs of entries, keyed by settings and source file.

``<cache_dir>/<modality>-<settings_hash>/`` holds ``settings.json`` and packs ``<xx>/<pack>.zip``; a pack holds one
task's usable samples as members ``<key><suffix>`` and ``index.json`` (``{key: [member or "", reason]}``). A key hashes
the settings and the source's absolute path, size and mtime. Packs are written whole and renamed into place. Layout and
measurements: docs/preprocessing.md."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vfcross.config import FaceConfig, VoiceConfig, to_dict
from vfcross.io import atomic_write

#: Fields that do not change an entry, left out of the settings hash (speed settings, and the later ``no_face``).
UNHASHED_FIELDS = frozenset({"batch_size", "batch_pixels", "no_face"})
#: Version of how entries are made; part of the settings hash (3: packs, change keys, batched detection).
CACHE_VERSION = 3
INDEX = "index.json"
SETTINGS = "settings.json"


@dataclass(frozen=True)
class Outcome:
    """What became of one sample (``processed``, ``cached`` or ``skipped``), why or a remark, and its entry
    (``<pack>.zip/<member>``; "" when skipped)."""

    outcome: str
    reason: str = ""
    cache_path: str = ""


def settings_hash(settings: Any) -> str:
    """Short hash of a configuration dataclass (fields in :data:`UNHASHED_FIELDS` excluded)."""
    fields = {k: v for k, v in dataclasses.asdict(settings).items() if k not in UNHASHED_FIELDS}
    text = json.dumps({**fields, "cache_version": CACHE_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_folder(cache_dir: str | Path, modality: str, settings: Any) -> Path:
    """The folder holding ``modality``'s entries made with ``settings``."""
    return Path(cache_dir) / f"{modality}-{settings_hash(settings)}"


def open_folder(cache_dir: str | Path, modality: str, settings: Any) -> Path:
    """:func:`cache_folder`, created with its ``settings.json`` (which loading an audio entry reads)."""
    folder = cache_folder(cache_dir, modality, settings)
    if not (folder / SETTINGS).is_file():
        atomic_write(folder / SETTINGS, lambda stream: stream.write(json.dumps(to_dict(settings)).encode()))
    return folder


def change_key(path: str | Path, folder: Path) -> str:
    """The entry key of source ``path`` in ``folder``: settings, absolute path, size, mtime. OSError if unreadable."""
    stat = os.stat(path)
    text = f"{folder.name}\0{os.path.abspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def read_index(folder: Path) -> dict[str, Outcome]:
    """Every entry of ``folder``'s packs: ``cached`` (with its path) or ``skipped`` (with the reason)."""
    known: dict[str, Outcome] = {}
    for pack in sorted(folder.glob("*/*.zip")):
        try:
            with zipfile.ZipFile(pack) as archive:
                index = json.loads(archive.read(INDEX))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            continue  # not a complete pack: its samples are made again
        for key, (member, reason) in index.items():
            known[key] = Outcome("cached", reason, f"{pack}/{member}") if member else Outcome("skipped", reason)
    return known


def store(folder: Path, entries: list[tuple[str, bytes | None, str, str]]) -> list[Outcome]:
    """Write one pack of ``(key, data or None, suffix, reason)`` entries; their outcomes, in order."""
    name = hashlib.blake2b("\n".join(key for key, *_ in entries).encode(), digest_size=16).hexdigest()
    pack = folder / name[:2] / f"{name}.zip"
    members = {key: f"{key}{suffix}" if data is not None else "" for key, data, suffix, _ in entries}

    def write(stream: Any) -> None:
        with zipfile.ZipFile(stream, "w", zipfile.ZIP_STORED) as archive:
            for key, data, _, _ in entries:
                if data is not None:
                    archive.writestr(members[key], data)
            archive.writestr(INDEX, json.dumps({key: [members[key], reason] for key, _, _, reason in entries}))

    atomic_write(pack, write)
    return [Outcome("processed", reason, f"{pack}/{members[key]}") if data is not None else
            Outcome("skipped", reason) for key, data, _, reason in entries]


def read_entry(cache_path: str | Path) -> tuple[bytes, str]:
    """The bytes and suffix of an entry: a pack member (``<pack>.zip/<member>``) or a plain file."""
    pack, inside, member = str(cache_path).rpartition(".zip/")
    if not inside:
        return Path(cache_path).read_bytes(), Path(cache_path).suffix
    with zipfile.ZipFile(pack + ".zip") as archive:
        return archive.read(member), Path(member).suffix


def folder_settings(cache_path: str | Path) -> dict:
    """The ``settings.json`` of the cache folder holding the packed entry ``cache_path``."""
    return _settings(str(Path(str(cache_path).rpartition(".zip/")[0]).parent.parent))


@functools.lru_cache(maxsize=64)
def _settings(folder: str) -> dict:
    """``folder``'s settings, read once per process."""
    return json.loads((Path(folder) / SETTINGS).read_text())


def bytes_per_sample(face: FaceConfig, voice: VoiceConfig, voice_seconds: float = 8.2) -> dict[str, float]:
    """Projected cache bytes of one face and one clip (``vfcross plan`` sizes the cache with it), from rates
    measured on the real slice (docs/preprocessing.md)."""
    jpeg_per_pixel = {75: 0.108, 85: 0.139, 90: 0.170, 95: 0.234}
    speech = 0.954 * voice_seconds
    qualities = sorted(jpeg_per_pixel)
    per_pixel = (0.700 if face.storage == "lossless" else
                 float(np.interp(face.jpeg_quality, qualities, [jpeg_per_pixel[q] for q in qualities])))
    crop = per_pixel * 256**2 * (face.size / 256) ** {"lossless": 1.6, "jpeg": 1.25}[face.storage]
    if voice.storage == "audio":
        clip = 18_600 * speech
    else:
        hop = round(voice.sample_rate * voice.hop_ms / 1000.0)
        clip = 128 + 2 * voice.frequency_rows * max(1, 1 + int(speech * voice.sample_rate - voice.n_fft) // hop)
    return {"face": crop + 220, "voice": clip + 220}
