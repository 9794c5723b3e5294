"""locks.py: urgent holders (live frames) go first, and background threads keep their lower priority."""
from __future__ import annotations

import sys

import pytest


def test_priority_lock_serves_waiting_urgent_callers_first():
    import threading
    import time

    from fusion_fer.locks import PriorityLock

    lock, order = PriorityLock(), []
    started = threading.Event()

    def hold():
        with lock():
            started.set()
            time.sleep(0.2)

    def take(name, urgent):
        with lock(urgent=urgent):
            order.append(name)

    holder = threading.Thread(target=hold)
    holder.start()
    started.wait()
    waiting = [threading.Thread(target=take, args=(f"photo{i}", False)) for i in range(3)]
    for t in waiting:
        t.start()
    time.sleep(0.05)
    live = threading.Thread(target=take, args=("frame", True))
    live.start()  # arrives last, goes first
    for t in [holder, live, *waiting]:
        t.join()
    assert order[0] == "frame" and sorted(order[1:]) == ["photo0", "photo1", "photo2"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="threads have their own CPU priority on Linux only")
def test_a_photos_mesh_runs_at_the_photos_priority_and_a_live_frames_at_its_own():
    """The mesh runs on a worker thread beside the network: a background (niced) caller's mesh must stay niced,
    and a normal caller after it must not get that niced thread."""
    from concurrent.futures import ThreadPoolExecutor

    from fusion_fer.locks import lower_thread_priority, thread_niceness
    from fusion_fer.predict import _mesh_threads

    base = thread_niceness()

    def from_background():
        assert lower_thread_priority(5)
        return thread_niceness(), _mesh_threads().submit(thread_niceness).result()

    with ThreadPoolExecutor(1) as background:
        caller, worker = background.submit(from_background).result()
    assert caller == worker == min(19, base + 5)
    assert _mesh_threads().submit(thread_niceness).result() == base
