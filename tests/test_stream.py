"""stream.py: per-face smoothing across frames, track matching, frame rate; fast detection agrees."""
from __future__ import annotations

import cv2
import numpy as np

from fusion_fer.data import CLASSES
from fusion_fer.predict import FaceResult
from fusion_fer.stream import StreamState, box_iou


def _face(box, top: str, p: float = 0.6) -> FaceResult:
    probs = {c: (1 - p) / 6 for c in CLASSES}
    probs[top] = p
    return FaceResult(box=box, label=top, probs=probs)


def test_smoothing_stops_a_flickering_label():
    state = StreamState(alpha=0.3)
    labels = []
    for i in range(20):
        # the raw prediction flips on every 4th frame, as a noisy single-frame model does
        raw = _face((100 + i, 100, 200 + i, 220), "sad" if i % 4 == 3 else "happy")
        labels.append(state.update([raw], CLASSES)[0].label)
    assert labels.count("happy") == 20
    probs = state.update([_face((120, 100, 220, 220), "happy")], CLASSES)[0].probs
    assert abs(sum(probs.values()) - 1) < 1e-6


def test_two_faces_keep_their_own_tracks():
    state = StreamState(alpha=0.5)
    for _ in range(5):
        out = state.update([_face((0, 0, 100, 100), "happy"), _face((300, 0, 400, 100), "angry")], CLASSES)
    assert [f.label for f in out] == ["happy", "angry"]
    # Order swaps in the next frame: matching is by position, not by list order.
    out = state.update([_face((302, 0, 402, 100), "angry"), _face((2, 0, 102, 100), "happy")], CLASSES)
    assert [f.label for f in out] == ["angry", "happy"] and len(state.tracks) == 2
    for _ in range(state.max_missed + 1):
        state.update([], CLASSES)
    assert state.tracks == []  # faces gone for long enough are forgotten


def test_iou_and_fps():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert abs(box_iou((0, 0, 10, 10), (5, 0, 15, 10)) - 1 / 3) < 1e-9
    state = StreamState()
    assert state.fps == 0.0
    state.times.extend([0.0, 0.1, 0.2, 0.3, 0.4])
    assert abs(state.fps - 10.0) < 1e-6


def test_fast_stream_detection_finds_the_same_face(detector, hopper_rgb):
    frame = np.full((480, 640, 3), 70, np.uint8)
    face = cv2.resize(hopper_rgb, (376, 440))
    frame[20:460, 132:508] = face
    full, fast = detector.detect(frame), detector.detect(frame, max_side=320, min_face_fraction=0.2)
    assert len(full) == len(fast) == 1
    assert box_iou(full[0].box, fast[0].box) > 0.85
