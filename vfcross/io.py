"""File helpers every stage shares: atomic writes, stale temporaries, checksums.

This module imports nothing from the rest of vfcross, so any stage may use it.
"""

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
    """Write ``path`` through a temporary file in its folder and ``os.replace``.

    Readers never see a half-written file, and an interrupted write leaves no
    temporary file behind. The file gets the mode any new file gets (0666 less
    the umask, or the folder's default ACL), so colleagues sharing a folder can
    read it; its bytes are fsynced before the rename and the folder after it
    (where the OS allows), so a power loss leaves the old file or the whole new
    one. Used for every file vfcross writes that a later step or a resumed run
    reads back (cache entries, checkpoints, logs, manifests, embeddings). A write
    that fails on a full disk says so (torch's own message is "unexpected pos").
    """
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
    """A new ``.<name>.<random>.tmp`` beside ``path``, opened for writing.

    Unlike ``tempfile.mkstemp`` (always 0600) it is created with mode 0666, which
    the OS reduces by the umask (or sets from the folder's default ACL).
    """
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


def remove_stale_temporaries(folder: Path, names: tuple[str, ...]) -> list[Path]:
    """Delete the temporary files :func:`atomic_write` left in ``folder`` for ``names``.

    A process killed outright (SIGKILL, power loss) during a write cannot
    clean up after itself; its ``.<name>.*.tmp`` file is never read, only
    wasted space (a checkpoint's is as large as the checkpoint). Call this
    where no other process can be writing those files. Returns what was removed.
    """
    removed = []
    for name in names:
        for stale in Path(folder).glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (checkpoints and models are identified by it)."""
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()
