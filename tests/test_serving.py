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



def test_live_frames_are_whole_jpegs_inside_a_data_url():
    """A live frame travels in the stream's message: a JPEG of the frame, in RGB order, that decodes whole."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    from fusion_fer.serving import jpeg_data_url

    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:, :32] = (250, 10, 10)
    url = jpeg_data_url(rgb)
    head, data = url.split(",", 1)
    assert head == "data:image/jpeg;base64"
    back = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
    assert back.shape == rgb.shape and abs(int(back[10, 5, 0]) - 250) < 12 and back[10, 60, 0] < 12  # RGB, not BGR
    assert len(jpeg_data_url(rgb, quality=95)) > len(jpeg_data_url(rgb, quality=30))
