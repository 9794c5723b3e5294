"""Per-stream state for live video: faces matched between frames, probabilities smoothed, frame rate.

Each browser session keeps one `StreamState` (in `gr.State`), so several viewers don't mix.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from .predict import FaceResult


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Track:
    box: tuple[float, float, float, float]
    probs: np.ndarray  # smoothed (7,)
    missed: int = 0


@dataclass
class StreamState:
    """Smooths predictions per face with an exponential moving average.

    A face in the new frame continues the track whose last box overlaps it most (IoU >=
    `min_iou`); unmatched faces start new tracks, and tracks unseen for `max_missed` frames end.
    """

    alpha: float = 0.35  # weight of the newest frame: lower is steadier, higher reacts faster
    min_iou: float = 0.3
    max_missed: int = 5
    detect_max_side: int = 320  # webcam frames are detected on a 320 px copy...
    min_face_fraction: float = 0.2  # ...for faces of at least a fifth of the frame: a short MTCNN pyramid
    tracks: list[_Track] = field(default_factory=list)
    times: deque = field(default_factory=lambda: deque(maxlen=30))

    def predict_kwargs(self) -> dict:
        """The detection settings `Predictor.predict` takes for a stream frame."""
        return {"detect_max_side": self.detect_max_side, "min_face_fraction": self.min_face_fraction}

    def update(self, faces: list[FaceResult], classes: tuple[str, ...]) -> list[FaceResult]:
        """Returns the faces with smoothed probabilities (and labels), in the same order."""
        self.times.append(time.perf_counter())
        used: set[int] = set()
        out = []
        for face in faces:
            p = np.array([face.probs[c] for c in classes])
            best, best_iou = None, self.min_iou
            for k, t in enumerate(self.tracks):
                iou = box_iou(face.box, t.box)
                if k not in used and iou >= best_iou:
                    best, best_iou = k, iou
            if best is None:
                self.tracks.append(_Track(face.box, p))
                best = len(self.tracks) - 1
            else:
                t = self.tracks[best]
                t.probs = (1 - self.alpha) * t.probs + self.alpha * p
                t.box, t.missed = face.box, 0
            used.add(best)
            sm = self.tracks[best].probs
            probs = {c: float(v) for c, v in zip(classes, sm / sm.sum())}
            out.append(replace(face, probs=probs, label=max(probs, key=probs.get)))
        for k, t in enumerate(self.tracks):
            if k not in used:
                t.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return out

    @property
    def fps(self) -> float:
        """Frames processed per second over the recent frames."""
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / max(1e-6, self.times[-1] - self.times[0])
