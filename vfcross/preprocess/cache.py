"""On-disk cache of preprocessed tensors, keyed by settings and content.

Layout: ``<cache_dir>/<modality>-<settings_hash>/<content_hash>.npy`` where
``settings_hash`` hashes the modality's configuration (:class:`FaceConfig` or
:class:`VoiceConfig` as JSON, with :data:`CACHE_VERSION`) and ``content_hash``
the source file's bytes.
Renaming or moving a dataset therefore keeps its cache, and changing a setting
that alters the output starts a new folder instead of mixing results.

Beside a tensor, ``<content_hash>.note.json`` keeps a remark on how it was made
(a face crop taken without a detected face, or from a frame with several faces;
a clip cut to ``max_seconds``). A file that could not be used
leaves ``<content_hash>.skip.json`` with the reason, so a re-run reports it
again without redoing the work.

Every file is written to a temporary file in the same folder and moved into
place with ``os.replace``, which is atomic: an interrupted run leaves complete
entries or none, never a half-written one under a final name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vfcross.io import atomic_write

#: Fields that do not change a cache entry, left out of the settings hash so
#: that the cache stays valid when they are tuned: batch sizes change how fast
#: a result is made, and ``no_face`` only decides later whether a fallback
#: crop (always cached, flagged) is used.
UNHASHED_FIELDS = frozenset({"batch_size", "batch_pixels", "no_face"})
#: Version of how entries are made from the settings; part of the settings
#: hash, so a change of the method (2: the largest face of a frame is kept, not
#: the most confident; a face-less image is always cached as a flagged
#: fallback crop) never reuses entries made the old way.
CACHE_VERSION = 2


@dataclass(frozen=True)
class Outcome:
    """What became of one sample: ``processed``, ``cached`` or ``skipped``."""

    outcome: str
    #: Why it was skipped, or a remark on a produced tensor; "" if none.
    reason: str = ""
    #: The tensor's file; "" when skipped.
    cache_path: str = ""


def settings_hash(settings: Any) -> str:
    """Short hash of a configuration dataclass (fields in :data:`UNHASHED_FIELDS` excluded)."""
    fields = {k: v for k, v in dataclasses.asdict(settings).items() if k not in UNHASHED_FIELDS}
    text = json.dumps({**fields, "cache_version": CACHE_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def content_hash(data: bytes) -> str:
    """Hash of a source file's bytes, the name of its cache entry."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def cache_folder(cache_dir: str | Path, modality: str, settings: Any) -> Path:
    """The folder holding ``modality``'s entries made with ``settings``."""
    return Path(cache_dir) / f"{modality}-{settings_hash(settings)}"


def _write_json(path: Path, data: dict) -> None:
    """Atomically write ``data`` as JSON."""
    atomic_write(path, lambda stream: stream.write(json.dumps(data).encode()))


def lookup(folder: Path, key: str) -> Outcome | None:
    """The remembered outcome of entry ``key``: ``cached`` or ``skipped``; None if unknown."""
    array = folder / f"{key}.npy"
    if array.exists():
        note = folder / f"{key}.note.json"
        reason = json.loads(note.read_text())["reason"] if note.exists() else ""
        return Outcome("cached", reason, str(array))
    skip = folder / f"{key}.skip.json"
    if skip.exists():
        return Outcome("skipped", json.loads(skip.read_text())["reason"])
    return None


def store(folder: Path, key: str, array: np.ndarray | None, reason: str) -> Outcome:
    """Save a result under ``key``: the tensor (with ``reason`` as its note) or the skip.

    The note is written before the tensor, so an entry whose tensor exists is
    always complete.
    """
    if array is None:
        _write_json(folder / f"{key}.skip.json", {"reason": reason})
        return Outcome("skipped", reason)
    if reason:
        _write_json(folder / f"{key}.note.json", {"reason": reason})
    path = folder / f"{key}.npy"
    atomic_write(path, lambda stream: np.save(stream, array, allow_pickle=False))
    return Outcome("processed", reason, str(path))
