"""A lock for the models that every request shares: a live frame waiting behind photo uploads would make
the stream stutter, so urgent holders are served first."""
from __future__ import annotations

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
