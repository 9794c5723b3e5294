"""Per-stream state for live and recorded video: faces matched between frames into tracks with
stable ids, probabilities smoothed per track, scene cuts, frame rate.

Each browser session keeps one `StreamState` (in `gr.State`), so several viewers don't mix;
`fusion_fer.video` keeps one per recorded clip. A live stream (`StreamState.analyse`) detects faces
every few frames only: in between, each face's box follows its mesh, which runs on every frame
anyway, so MTCNN's cost is shared by several frames.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from .predict import FaceResult, Predictor

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
    anchor: np.ndarray | None = None  # the box relative to its mesh's centre and size: how the mesh moves the box

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
    smoothing_s: float = 0.25  # live (`analyse`): the smoothing's time constant instead, whatever the frame rate
    min_iou: float = 0.3  # least `box_similarity` for a face to continue a track
    max_missed: int = 5
    detect_max_side: int = 320  # webcam frames are detected on a 320 px copy...
    min_face_fraction: float = 0.2  # ...for faces of at least a fifth of the frame: a short MTCNN pyramid
    detect_every: int = 6  # live: MTCNN on every 6th frame...
    detect_every_s: float = 0.15  # ...or after this long, whichever comes first (or when a face is lost): a new face
    # is found within about 0.2 s at any frame rate; the mesh moves the known boxes in between
    live: bool = True  # live: the model's live recipe (fewer test-time views); the smoothing covers the difference
    box_smoothing: float = 0.5  # weight of the last box in the shown one: steadier crops, so steadier answers (0: none)
    cut_threshold: float = 0.1  # a frame this unlike the last (mean absolute difference of 16x12 thumbnails, 0..1) is a new scene
    tracks: list[Track] = field(default_factory=list)
    times: deque = field(default_factory=lambda: deque(maxlen=30))
    next_id: int = 1
    classes: tuple[str, ...] = ()  # the classes the tracks' probabilities are over (another model starts afresh)
    since_detect: int = 0  # live frames since the last detection
    detected_at: float = float("-inf")  # perf_counter time of the last detection
    thumb: np.ndarray | None = field(default=None, repr=False)  # the last frame's thumbnail, for scene cuts

    def predict_kwargs(self) -> dict:
        """The detection settings `Predictor.predict` takes for a stream frame."""
        # no edge pass: a face at the frame's edge is found again as it moves in, and detection runs several times a second
        return {"detect_max_side": self.detect_max_side, "min_face_fraction": self.min_face_fraction, "urgent": True,
                "edge_pass": False}

    def new_scene(self, rgb: np.ndarray) -> bool:
        """Notes a frame; True (and every track ended) when it is very unlike the last one: a hard cut, where
        a face in the same place is someone else."""
        import cv2

        thumb = cv2.resize(np.ascontiguousarray(rgb), (16, 12), interpolation=cv2.INTER_AREA).astype(np.float32)
        last, self.thumb = self.thumb, thumb
        if last is None or last.shape != thumb.shape or np.abs(thumb - last).mean() / 255 <= self.cut_threshold:
            return False
        self.tracks = []
        return True

    def analyse(self, frame: np.ndarray, predictor: Predictor) -> list[FaceResult]:
        """One live frame: every face, largest first, with smoothed probabilities.

        Detects faces on every `detect_every`-th frame or `detect_every_s` after the last detection, after a
        face is lost, after a scene cut and when the model changes. On the frames between, each face is
        classified at the box its track predicts, and the box then follows where its mesh was found. A face
        whose mesh is not found there is lost, and the next frame detects.
        """
        self.since_detect += 1
        now = time.perf_counter()
        # the weight of this frame follows the time since the last: the same smoothing at 10 frames/s or 30
        dt = min(1.0, now - self.times[-1]) if self.times else 1.0
        alpha = 1.0 - float(np.exp(-dt / self.smoothing_s))
        live = [t for t in self.tracks if t.missed == 0]
        if (self.new_scene(frame) or not live or self.since_detect >= self.detect_every
                or now - self.detected_at >= self.detect_every_s or tuple(predictor.classes) != self.classes):
            self.since_detect, self.detected_at = 0, now
            faces = predictor.predict(frame, live=self.live, **self.predict_kwargs())
            out = self.update_tracks(faces, predictor.classes, alpha=alpha)
            by_id = {t.id: t for t in self.tracks}
            for (tid, face), raw in zip(out, faces):
                by_id[tid].anchor = _anchor(face.box, raw.landmarks)
            return [f for _, f in out]
        self.times.append(now)
        results = predictor.predict_at(frame, [t.predicted_box() for t in live], urgent=True, live=self.live)
        out = []
        for track, face in zip(live, results):
            if face.landmarks is None or track.anchor is None:
                track.missed += 1
                self.since_detect = self.detect_every  # look for it again on the next frame
                continue
            cx, cy, size = _mesh_frame(face.landmarks)
            box = tuple(float(v) for v in np.array([cx, cy, cx, cy]) + track.anchor * size)
            out.append(self._follow(track, replace(face, box=box), self.classes, alpha))
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return sorted(out, key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))

    def _follow(self, track: Track, face: FaceResult, classes: tuple[str, ...], alpha: float) -> FaceResult:
        """Moves a track to this face and smooths its probabilities (`alpha`: the face's weight); the face with
        the smoothed ones."""
        p = np.array([face.probs[c] for c in classes], np.float64)
        step = (np.asarray(face.box) - np.asarray(track.box)) / (track.missed + 1)
        track.velocity = 0.5 * track.velocity + 0.5 * step
        track.probs = (1 - alpha) * track.probs + alpha * p
        if self.box_smoothing and not track.missed:
            face = replace(face, box=tuple(float(v) for v in self.box_smoothing * (np.asarray(track.box) + track.velocity)
                                           + (1 - self.box_smoothing) * np.asarray(face.box)))
        track.box, track.missed = face.box, 0
        probs = {c: float(v) for c, v in zip(classes, track.probs / track.probs.sum())}
        return replace(face, probs=probs, label=max(probs, key=probs.get))

    def update(self, faces: list[FaceResult], classes: tuple[str, ...]) -> list[FaceResult]:
        """Returns the faces with smoothed probabilities (and labels), in the same order."""
        return [f for _, f in self.update_tracks(faces, classes)]

    def update_tracks(self, faces: list[FaceResult], classes: tuple[str, ...],
                      alpha: float | None = None) -> list[tuple[int, FaceResult]]:
        """Like `update`, with each face's track id: [(track_id, smoothed face)] in the order given.
        `alpha`: the newest faces' weight (default `self.alpha`)."""
        alpha = self.alpha if alpha is None else alpha
        self.times.append(time.perf_counter())
        if tuple(classes) != self.classes:  # the user switched models: smoothed probabilities are over other classes
            self.tracks, self.classes = [], tuple(classes)
        matches = self._match([f.box for f in faces])
        out = []
        for i, face in enumerate(faces):
            k = matches.get(i)
            if k is None:
                track = Track(self.next_id, face.box, np.array([face.probs[c] for c in classes], np.float64))
                self.next_id += 1
                self.tracks.append(track)
            else:
                track = self.tracks[k]
            out.append((track.id, self._follow(track, face, classes, alpha)))
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


def _mesh_frame(landmarks: np.ndarray) -> tuple[float, float, float]:
    """Centre (x, y) and size of the mesh, in pixels: the mean of its points and their RMS distance from it.
    Averages over 468 points move far less from frame to frame than the extreme points would."""
    xy = landmarks[:, :2].astype(np.float64)
    centre = xy.mean(0)
    return float(centre[0]), float(centre[1]), float(max(1e-6, np.sqrt(((xy - centre) ** 2).sum(1).mean())))


def _anchor(box, landmarks: np.ndarray | None) -> np.ndarray | None:
    """The box in units of its mesh's size, from the mesh's centre: a later mesh gives the box back."""
    if landmarks is None:
        return None
    cx, cy, size = _mesh_frame(landmarks)
    return (np.asarray(box, np.float64) - np.array([cx, cy, cx, cy])) / size
