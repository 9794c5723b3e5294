"""Per-stream state for live and recorded video: faces matched between frames into tracks with
stable ids, probabilities smoothed per track, frame rate.

Each browser session keeps one `StreamState` (in `gr.State`), so several viewers don't mix;
`fusion_fer.video` keeps one per recorded clip.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from .predict import FaceResult

Box = tuple[float, float, float, float]


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box_similarity(a: Box, b: Box) -> float:
    """How likely two boxes are the same face, 0..1: their IoU, or, for boxes that moved further than
    they overlap (small or fast faces, sparse frames), closeness of centres within two face sizes
    times the likeness of their sizes."""
    iou = box_iou(a, b)
    sa, sb = (max(1e-6, (x2 - x1) * (y2 - y1)) ** 0.5 for x1, y1, x2, y2 in (a, b))
    dist = ((a[0] + a[2] - b[0] - b[2]) ** 2 + (a[1] + a[3] - b[1] - b[3]) ** 2) ** 0.5 / 2
    near = max(0.0, 1 - dist / (2 * max(sa, sb))) * min(sa, sb) / max(sa, sb)
    return max(iou, near)


@dataclass
class Track:
    """One face followed across frames."""

    id: int  # stable for the track's life; numbered from 1 in order of appearance
    box: Box  # last matched box
    probs: np.ndarray  # smoothed class probabilities
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))  # box change per update
    missed: int = 0  # updates since it was last matched

    def predicted_box(self, ahead: float = 1.0) -> Box:
        """Where the box should be `ahead` updates after the last match, at constant velocity."""
        return tuple(float(v) for v in np.asarray(self.box) + self.velocity * (self.missed + ahead))


@dataclass
class StreamState:
    """Follows faces across frames and smooths their predictions with an exponential moving average.

    Each new face is matched to a track by optimal assignment on `box_similarity` (>= `min_iou`)
    between its box and where each track's box should be by now at constant velocity, so faces
    that move fast or cross keep their ids. Unmatched faces start new tracks; tracks unseen
    for `max_missed` updates end.
    """

    alpha: float = 0.35  # weight of the newest frame: lower is steadier, higher reacts faster; 1.0 turns smoothing off
    min_iou: float = 0.3  # least `box_similarity` for a face to continue a track
    max_missed: int = 5
    detect_max_side: int = 320  # webcam frames are detected on a 320 px copy...
    min_face_fraction: float = 0.2  # ...for faces of at least a fifth of the frame: a short MTCNN pyramid
    tracks: list[Track] = field(default_factory=list)
    times: deque = field(default_factory=lambda: deque(maxlen=30))
    next_id: int = 1
    classes: tuple[str, ...] = ()  # the classes the tracks' probabilities are over (another model starts afresh)

    def predict_kwargs(self) -> dict:
        """The detection settings `Predictor.predict` takes for a stream frame."""
        return {"detect_max_side": self.detect_max_side, "min_face_fraction": self.min_face_fraction, "urgent": True}

    def update(self, faces: list[FaceResult], classes: tuple[str, ...]) -> list[FaceResult]:
        """Returns the faces with smoothed probabilities (and labels), in the same order."""
        return [f for _, f in self.update_tracks(faces, classes)]

    def update_tracks(self, faces: list[FaceResult], classes: tuple[str, ...]) -> list[tuple[int, FaceResult]]:
        """Like `update`, with each face's track id: [(track_id, smoothed face)] in the order given."""
        self.times.append(time.perf_counter())
        if tuple(classes) != self.classes:  # the user switched models: smoothed probabilities are over other classes
            self.tracks, self.classes = [], tuple(classes)
        matches = self._match([f.box for f in faces])
        out = []
        for i, face in enumerate(faces):
            p = np.array([face.probs[c] for c in classes], np.float64)
            k = matches.get(i)
            if k is None:
                track = Track(self.next_id, face.box, p)
                self.next_id += 1
                self.tracks.append(track)
            else:
                track = self.tracks[k]
                step = (np.asarray(face.box) - np.asarray(track.box)) / (track.missed + 1)
                track.velocity = 0.5 * track.velocity + 0.5 * step
                track.probs = (1 - self.alpha) * track.probs + self.alpha * p
                track.box, track.missed = face.box, 0
            sm = track.probs
            probs = {c: float(v) for c, v in zip(classes, sm / sm.sum())}
            out.append((track.id, replace(face, probs=probs, label=max(probs, key=probs.get))))
        seen = {tid for tid, _ in out}
        for t in self.tracks:
            if t.id not in seen:
                t.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return out

    def _match(self, boxes: list[Box]) -> dict[int, int]:
        """{face index: track index} maximising the summed similarity, pairs below `min_iou` left out."""
        if not boxes or not self.tracks:
            return {}
        from scipy.optimize import linear_sum_assignment

        iou = np.array([[box_similarity(b, t.predicted_box()) for t in self.tracks] for b in boxes])
        rows, cols = linear_sum_assignment(-iou)
        return {int(r): int(c) for r, c in zip(rows, cols) if iou[r, c] >= self.min_iou}

    @property
    def fps(self) -> float:
        """Frames processed per second over the recent frames."""
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / max(1e-6, self.times[-1] - self.times[0])
