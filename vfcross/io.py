"""File helpers every stage shares: atomic writes, stale temporaries, checksums (imports nothing of vfcross)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import shutil
from pathlib import Path
from typing import IO, Callable


#: Free bytes below which a failed write is reported as a full disk.
DISK_FULL_BYTES = 64 * 2**20


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through a temporary file in its folder, fsync and ``os.replace``: readers never see a half file,
    a power loss leaves the old or the whole new one, and a full disk is said so (docs/preprocessing.md). The file
    gets the mode any new file gets (0666 less the umask), unlike ``tempfile.mkstemp``'s 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = _create_temporary(path)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException as exc:
        full = isinstance(exc, Exception) and shutil.disk_usage(path.parent).free < DISK_FULL_BYTES
        Path(temporary).unlink(missing_ok=True)
        if full:
            raise OSError(errno.ENOSPC, f"{path}: not written, its disk is full ({exc})") from exc
        raise
    _fsync_folder(path.parent)


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new ``.<name>.<random>.tmp`` beside ``path``, opened for writing with mode 0666 (less the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable; skipped where folders cannot be opened or synced (Windows, some filesystems)."""
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def remove_stale_temporaries(folder: Path, names: tuple[str, ...]) -> None:
    """Delete the temporary files a killed :func:`atomic_write` left in ``folder`` for ``names``. Call it where no
    other process can be writing those files."""
    for name in names:
        for stale in Path(folder).glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (checkpoints and models are identified by it)."""
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()
