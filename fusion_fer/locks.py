"""A lock for the models that every request shares: a live frame waiting behind photo uploads would make
the stream stutter, so urgent holders are served first. And the threads' CPU priorities that keep photos behind live frames."""
from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class PriorityLock:
    """Mutual exclusion where waiting urgent holders are served before waiting ordinary ones.

        lock = PriorityLock()
        with lock(urgent=True):    # a webcam frame
            ...
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held = False
        self._urgent_waiting = 0

    @contextmanager
    def __call__(self, urgent: bool = False) -> Iterator[None]:
        with self._cond:
            if urgent:
                self._urgent_waiting += 1
            try:
                while self._held or (not urgent and self._urgent_waiting):
                    self._cond.wait()
            finally:
                if urgent:
                    self._urgent_waiting -= 1
            self._held = True
        try:
            yield
        finally:
            with self._cond:
                self._held = False
                self._cond.notify_all()


def lower_thread_priority(niceness: int) -> bool:
    """Raises the calling thread's nice value by `niceness` (Linux keeps one per thread; threads it
    starts later, such as torch's, inherit it).

    Returns:
        True if applied; False where the OS has no per-thread priority (then nothing changes).
    """
    if not sys.platform.startswith("linux"):
        return False  # elsewhere PRIO_PROCESS would renice the whole server
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + niceness))
        return True
    except (AttributeError, OSError):
        return False


def thread_niceness() -> int:
    """The calling thread's nice value on Linux (0 elsewhere, where threads have no priority of their own)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    except (AttributeError, OSError):
        return 0
