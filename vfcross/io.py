"""Small helpers every stage shares: atomic file writes, Markdown tables, worker processes.

This module imports nothing from the rest of vfcross, so any stage may use it.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import multiprocessing
import os
import secrets
import signal
import threading
import time
from pathlib import Path
from typing import IO, Callable, Iterator

import pandas as pd


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through a temporary file in its folder and ``os.replace``.

    Readers never see a half-written file, and an interrupted write leaves no
    temporary file behind. The file gets the mode any new file gets (0666 less
    the umask, or the folder's default ACL), so colleagues sharing a folder can
    read it; its bytes are fsynced before the rename and the folder after it
    (where the OS allows), so a power loss leaves the old file or the whole new
    one. Used for every file vfcross writes that a later step or a resumed run
    reads back (cache entries, checkpoints, logs, manifests, embeddings).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = _create_temporary(path)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
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


def init_worker_process(parent: int) -> None:
    """Set up a worker process of a pool: it dies with its ``parent`` (pid) and leaves Ctrl-C to it.

    Pass the creating process's ``os.getpid()`` as the pool's ``initargs``.
    A worker would otherwise go on with the queued work of a parent that was
    killed. On Linux the kernel sends SIGKILL when the parent goes
    (``PR_SET_PDEATHSIG``); everywhere a watchdog thread exits once the
    worker's parent is no longer ``parent``, and a worker whose parent died
    while it was starting exits at once. SIGINT is ignored, because Ctrl-C
    reaches the whole process group: the parent stops the pool, and the
    workers print no tracebacks of their own.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the watchdog alone
    if os.getppid() != parent:  # the parent died before the kernel could be told
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def describe_skips(skipped: pd.DataFrame, name_column: str, report: Path | str | None, limit: int = 5) -> str:
    """One line for a terminal: how many files were skipped, the first few with their reasons, and where the full list is.

    ``skipped`` has a ``reason`` column and ``name_column`` naming each file.
    """
    if skipped.empty:
        return "nothing skipped"
    shown = "; ".join(f"{name} ({reason})" for name, reason in
                      skipped[[name_column, "reason"]].head(limit).itertuples(index=False))
    more = f"; and {len(skipped) - limit} more" if len(skipped) > limit else ""
    where = f"; every skipped file with its reason: {report}" if report else ""
    return f"skipped {len(skipped)} file(s): {shown}{more}{where}"


@contextlib.contextmanager
def workers_starting() -> Iterator[None]:
    """Start worker processes inside this block: they are born ignoring Ctrl-C.

    :func:`init_worker_process` ignores SIGINT only once a worker runs its
    initialiser; a Ctrl-C while it is still starting up would print its
    traceback. Ignoring SIGINT here while the workers are created closes that
    gap (an ignored signal stays ignored across ``exec``, and Python then
    leaves it so). The price is that a Ctrl-C in the milliseconds the block
    lasts is lost. Only the main thread may change signal handling; elsewhere
    the block does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def worker_pool(processes: int, start_method: str | None = None) -> Iterator[multiprocessing.pool.Pool]:
    """A pool of ``processes`` workers, born ignoring Ctrl-C and dying with this process.

    Leaving the block, normally or by an exception such as Ctrl-C,
    terminates the workers at once (see :func:`workers_starting` and
    :func:`init_worker_process`). ``start_method`` as in
    :func:`multiprocessing.get_context` (None: the platform's default).
    """
    with workers_starting():
        pool = multiprocessing.get_context(start_method).Pool(processes, initializer=init_worker_process,
                                                              initargs=(os.getpid(),))
    with pool:
        yield pool


def markdown_table(table: pd.DataFrame) -> str:
    """``table`` as a GitHub-flavoured Markdown table (``|`` in cells escaped, NA left blank)."""
    def cell(value: object) -> str:
        return "" if pd.isna(value) else str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in table.columns) + " |",
             "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (checkpoints and models are identified by it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
