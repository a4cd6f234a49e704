"""Worker processes that ignore Ctrl-C while starting and die with their parent, and a peak-memory reading.

Imports nothing from the rest of vfcross. Linux-only calls (``prctl``, ``/proc``) are made only where
:func:`linux_calls` allows them, each with a portable fallback (``VFCROSS_PORTABLE=1`` turns them off).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Iterator


def linux_calls() -> bool:
    """Whether Linux-only calls (``prctl``, ``/proc``) may be made: on Linux, unless ``VFCROSS_PORTABLE`` is set."""
    return sys.platform.startswith("linux") and not os.environ.get("VFCROSS_PORTABLE")


def init_worker_process(parent: int) -> None:
    """Set up a pool worker: it dies with its ``parent`` (pid, the pool's ``initargs``) and leaves Ctrl-C to it.
    Linux: the kernel kills it when the parent goes (``PR_SET_PDEATHSIG``); everywhere a watchdog thread exits within
    0.5 s of the parent's end. SIGINT is ignored: Ctrl-C reaches the whole group, and the parent stops the pool
    (docs/platforms.md)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if linux_calls():
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    known = multiprocessing.parent_process()

    def alive() -> bool:
        return os.getppid() == parent and (known is None or known.is_alive())

    if not alive():  # the parent died before the kernel could be told
        os._exit(1)

    def watch() -> None:
        while alive():
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


@contextlib.contextmanager
def worker_pool(processes: int, start_method: str | None = None) -> Iterator[multiprocessing.pool.Pool]:
    """A pool of ``processes`` workers, dying with this process and ended on leaving the block (``start_method`` as
    :func:`multiprocessing.get_context`). They are born ignoring Ctrl-C, so none prints a traceback while starting."""
    main = threading.current_thread() is threading.main_thread()  # only it may change signal handling
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        pool = multiprocessing.get_context(start_method).Pool(processes, initializer=init_worker_process,
                                                              initargs=(os.getpid(),))
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
    with pool:
        yield pool


class PeakMemory:
    """The peak resident memory (``mb``, MiB) of this process inside a ``with`` block, above its size at the start.
    ``reading`` names how: ``VmHWM`` (Linux, exact), ``ru_maxrss`` (the lifetime peak, when the process was never
    larger before), else ``sampled`` every 10 ms (Windows). docs/platforms.md."""

    def __enter__(self) -> "PeakMemory":
        import psutil

        self._process, self._peak, self._stop = psutil.Process(), 0, threading.Event()
        self.reading, self.mb = "sampled", 0.0
        if linux_calls():
            with contextlib.suppress(OSError):
                Path("/proc/self/clear_refs").write_text("5")  # 5: reset VmHWM to the current resident size
                self.reading = "VmHWM"
        self._start = self._process.memory_info().rss
        if self.reading == "sampled" and _max_rss() is not None and _max_rss() <= 1.02 * self._start + 2**24:
            self.reading = "ru_maxrss"
        if self.reading == "sampled":
            self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self._peak = max(self._peak, self._process.memory_info().rss)

    def __exit__(self, *exc) -> None:
        if self.reading == "VmHWM":
            status = Path("/proc/self/status").read_text()
            peak = int(status.split("VmHWM:")[1].split()[0]) * 1024
        elif self.reading == "ru_maxrss":
            peak = _max_rss()
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, self._process.memory_info().rss)
        self.mb = max(0, peak - self._start) / 2**20


def _max_rss() -> int | None:
    """This process's lifetime peak resident size in bytes from ``getrusage``, or None where there is none."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere
