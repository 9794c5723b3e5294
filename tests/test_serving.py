"""serving.py: photo work on low-priority threads, with results and errors given back."""
from __future__ import annotations

import sys

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority is Linux's")
def test_background_pool_runs_work_at_lower_priority_and_gives_back_results_and_errors():
    import contextvars
    import os
    import threading

    from fusion_fer.serving import BackgroundPool

    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    mine = nice()
    pool = BackgroundPool(2, niceness=7)
    assert pool.run(nice) == min(19, mine + 7)

    def child_nice() -> int:  # threads started by a pool thread (torch's helpers) inherit its priority
        out = []
        t = threading.Thread(target=lambda: out.append(nice()))
        t.start()
        t.join()
        return out[0]

    assert pool.run(child_nice) == min(19, mine + 7)
    assert nice() == mine  # the caller's thread is untouched

    var = contextvars.ContextVar("request", default="none")
    var.set("photo 1")
    assert pool.run(lambda suffix: var.get() + suffix, "!") == "photo 1!"  # the caller's context goes along

    def fail():
        raise ValueError("not an image")

    with pytest.raises(ValueError, match="not an image"):
        pool.run(fail)
