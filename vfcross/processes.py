"""Worker processes that ignore Ctrl-C while starting and die with their parent (preprocessing, rendering).

This module imports nothing from the rest of vfcross, so any stage may use it.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import threading
import time
from typing import Iterator


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
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the watchdog alone
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the kernel could be told
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


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
