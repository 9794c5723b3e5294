"""stream.py: per-face smoothing across frames, track matching, frame rate; fast detection agrees."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from fusion_fer.labels import CLASSES
from fusion_fer.predict import FaceResult
from fusion_fer.stream import StreamState, box_iou, box_similarity

from .helpers import portrait_frame


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


def test_faces_that_pass_through_each_other_keep_their_ids():
    # Two faces at the same height walk towards each other and through each other, 30 px a frame:
    # around the crossing both boxes overlap each track's last box, so matching on the last box
    # alone would hand the ids over; the constant-velocity prediction keeps them.
    state = StreamState(alpha=1.0)
    ids = {"a": set(), "b": set()}
    for i in range(14):
        a = _face((30 * i, 100, 30 * i + 100, 220), "happy")
        b = _face((400 - 30 * i, 100, 500 - 30 * i, 220), "angry")
        out = state.update_tracks([a, b] if i % 2 else [b, a], CLASSES)  # detector order changes too
        for tid, face in out:
            ids["a" if face.label == "happy" else "b"].add(tid)
    assert len(ids["a"]) == len(ids["b"]) == 1 and ids["a"] != ids["b"]  # one id each, all the way
    naive = StreamState(alpha=1.0)
    swaps = 0
    for i in range(14):  # the same faces with the prediction switched off: ids do swap
        a = _face((30 * i, 100, 30 * i + 100, 220), "happy")
        b = _face((400 - 30 * i, 100, 500 - 30 * i, 220), "angry")
        for t in naive.tracks:
            t.velocity[:] = 0
        out = naive.update_tracks([a, b], CLASSES)
        swaps += out[0][0] != 1
    assert swaps > 0


def test_small_fast_faces_and_sparse_frames_stay_one_track():
    # A 40 px face that moves 30 px between classified frames overlaps its last box by IoU ~0.14:
    # centres within two face sizes still continue the track, while a face far away starts its own.
    state = StreamState(alpha=1.0)
    for i in range(10):
        out = state.update_tracks([_face((30 * i, 50, 30 * i + 40, 90), "happy"), _face((500, 300, 540, 340), "sad")],
                                  CLASSES)
    assert [tid for tid, _ in out] == [1, 2] and state.next_id == 3
    assert box_similarity((0, 0, 40, 40), (30, 0, 70, 40)) > 0.3 > box_iou((0, 0, 40, 40), (30, 0, 70, 40))
    assert box_similarity((0, 0, 40, 40), (200, 0, 240, 40)) == 0.0
    assert box_similarity((0, 0, 40, 40), (10, 0, 170, 160)) < 0.3  # near, but four times the size: another face


def test_switching_to_a_model_with_other_classes_starts_the_smoothing_afresh():
    from fusion_fer.labels import FERPLUS_CLASSES

    state = StreamState(alpha=0.3)
    for _ in range(5):
        state.update([_face((100, 100, 200, 220), "happy", 0.9)], CLASSES)
    probs8 = {c: 0.02 for c in FERPLUS_CLASSES}
    probs8["contempt"] = 0.86
    out = state.update([FaceResult(box=(100, 100, 200, 220), label="contempt", probs=probs8)], FERPLUS_CLASSES)[0]
    # no mixing with the old model's "happy" history, and every one of the 8 classes is there
    assert out.label == "contempt" and abs(out.probs["contempt"] - 0.86) < 1e-9 and set(out.probs) == set(FERPLUS_CLASSES)
    assert len(state.tracks) == 1


class _Counting:
    """The real predictor, counting its detections (a stand-in for nothing: every call goes through)."""

    def __init__(self, predictor):
        self._p, self.detections = predictor, 0

    def predict(self, *args, **kwargs):
        self.detections += 1
        return self._p.predict(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._p, name)


@pytest.fixture(scope="module")
def predictor():
    from fusion_fer import load_predictor

    return load_predictor()


def test_live_stream_detects_every_nth_frame_and_the_mesh_keeps_the_box_on_the_face(predictor, detector, hopper_rgb):
    counting = _Counting(predictor)
    state = StreamState(detect_every=4, detect_every_s=float("inf"))
    ids, labels = set(), []
    for i in range(12):
        frame = portrait_frame(hopper_rgb, dx=3 * i)  # moving right, 3 px a frame
        faces = state.analyse(frame, counting)
        assert len(faces) == 1
        truth = detector.detect(frame, max_side=320, min_face_fraction=0.2)[0].box
        assert box_iou(faces[0].box, truth) > 0.8, (i, faces[0].box, truth)  # followed, detected or not
        ids.add(state.tracks[0].id)
        labels.append(faces[0].label)
    assert counting.detections == 3  # frames 0, 4 and 8
    assert ids == {1} and len(set(labels)) == 1  # one track, and a still expression keeps its label


def test_a_lost_face_is_looked_for_at_once_and_a_new_face_soon(predictor, hopper_rgb, astronaut_rgb):
    counting = _Counting(predictor)
    state = StreamState(detect_every=4, detect_every_s=float("inf"), cut_threshold=1.0)  # no scene cut: the mesh finds the loss
    frame = portrait_frame(hopper_rgb)
    for _ in range(2):
        state.analyse(frame, counting)
    empty = np.full_like(frame, 50)
    before = counting.detections
    assert state.analyse(empty, counting) == [] and counting.detections == before  # no face in the box: lost, not shown
    before = counting.detections
    assert state.analyse(empty, counting) == [] and counting.detections == before + 1  # so the next frame detects
    # a second face joining a tracked one gets its label within detect_every frames
    two = np.concatenate([portrait_frame(hopper_rgb, size=(480, 480)), portrait_frame(astronaut_rgb, size=(480, 480))], axis=1)
    one = two.copy()
    one[:, 480:] = 50
    state = StreamState(detect_every=4, detect_every_s=float("inf"))
    for _ in range(2):
        assert len(state.analyse(one, counting)) == 1
    seen = [len(state.analyse(two, counting)) for _ in range(4)]
    assert 2 in seen and seen.index(2) < state.detect_every


def test_a_hard_cut_ends_the_tracks(predictor, hopper_rgb, astronaut_rgb):
    state = StreamState(detect_every=4, detect_every_s=float("inf"))
    a, b = portrait_frame(hopper_rgb), portrait_frame(astronaut_rgb)
    for _ in range(3):
        state.analyse(a, predictor)
    first = state.tracks[0].id
    assert not state.new_scene(a) and not state.new_scene(np.clip(a.astype(int) + 15, 0, 255).astype(np.uint8))  # light changes are no cut
    state.analyse(b, predictor)
    assert [t.id for t in state.tracks] == [first + 1]  # the face in the same place is someone else
