"""locks.py: urgent holders (live frames) go first."""
from __future__ import annotations


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
