"""Landmarks: MediaPipe's Face Landmarker on a face crop, per-face normalisation, standardisation, mirroring.

Coordinates through the pipeline:
  * `FaceMesh.__call__` returns (468, 3) points in *crop units*: x, y in 0..1 across the crop
    (z on the same scale as x), so they do not depend on the crop's pixel size, and the face's
    52 blendshape coefficients.
  * `normalize` makes them independent of where the face sits and how big it is (and, by default,
    of head roll): centred on the mean point, divided by the RMS radius, eye line horizontal.
  * `LandmarkStats` standardises the flattened normalised points with the training set's mean/std.

The Face Landmarker's model (`assets/face_landmarker.task`, Apache-2.0, see `assets/NOTICE`) ships
inside the package and is checked against its sha256 whenever it is loaded.
"""
from __future__ import annotations

import hashlib
import json
import os
import weakref
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from .locks import PriorityLock

N_POINTS = 468  # the mesh; the Face Landmarker's 10 iris points (468-477) are not used
N_BLENDSHAPES = 52
ASSETS = Path(__file__).resolve().parent / "assets"
MIRROR_INDEX_FILE = ASSETS / "mesh_mirror_index.json"
TASK_FILE = ASSETS / "face_landmarker.task"
TASK_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
TASK_SOURCE = ("https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/"
               "face_landmarker.task")


class LandmarkerFileError(RuntimeError):
    """The Face Landmarker's model file is missing or is not the file this version of fusion_fer was built with."""


def read_task_file(path: str | os.PathLike = TASK_FILE, sha256: str = TASK_SHA256) -> bytes:
    """The Face Landmarker bundle's bytes, after checking them against the pinned sha256.

    Raises:
        LandmarkerFileError: the file is missing or its checksum differs; the message names the file,
            the expected checksum and where the right file comes from.
    """
    path = Path(path)
    where = f"reinstall fusion_fer, or put MediaPipe's face_landmarker.task (float16, version 1) from {TASK_SOURCE} there"
    try:
        data = path.read_bytes()
    except OSError as err:
        raise LandmarkerFileError(f"the Face Landmarker model {path} cannot be read ({err.strerror or err}): {where}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise LandmarkerFileError(
            f"the Face Landmarker model {path} is not the expected file: sha256 {digest} ({len(data):,} bytes), "
            f"expected {sha256}: {where}")
    return data


@lru_cache(maxsize=1)
def _connections() -> dict[str, tuple[tuple[int, int], ...]]:
    from mediapipe.tasks.python.vision.face_landmarker import FaceLandmarksConnections as C

    names = ("CONTOURS", "NOSE", "LEFT_EYE", "RIGHT_EYE", "TESSELATION")
    return {n: tuple((c.start, c.end) for c in getattr(C, f"FACE_LANDMARKS_{n}")) for n in names}


def _connection_vertices(name: str) -> np.ndarray:
    return np.array(sorted({v for edge in _connections()[name] for v in edge}), dtype=np.int64)


@lru_cache(maxsize=None)
def eye_indices() -> tuple[np.ndarray, np.ndarray]:
    """Mesh indices of the image-left and image-right eye contours (MediaPipe's own sets).

    MediaPipe names eyes from the subject's view: its RIGHT_EYE appears on the image's left.
    """
    return _connection_vertices("RIGHT_EYE"), _connection_vertices("LEFT_EYE")


def guide_indices() -> tuple[int, ...]:
    """Mesh points where the fused model reads the CNN's feature maps (`FusionConfig.guide_points`).

    MediaPipe's contours (lips, eyes, brows, face oval) and nose: the parts that move with an
    expression. Closed under mirroring, so a flipped face reads the same set of places.
    """
    pts = set(np.concatenate([_connection_vertices(n) for n in ("CONTOURS", "NOSE")]).tolist())
    pts |= {int(mirror_index()[i]) for i in pts}
    return tuple(sorted(pts))


def subset_mirror(indices: tuple[int, ...] | np.ndarray) -> np.ndarray:
    """For a mirror-closed subset of mesh points: position j of a face is position out[j] of its mirror."""
    idx = np.asarray(indices, dtype=np.int64)
    where = {int(v): j for j, v in enumerate(idx)}
    try:
        return np.array([where[int(mirror_index()[v])] for v in idx], dtype=np.int64)
    except KeyError as e:
        raise ValueError(f"point set is not closed under mirroring: {e} is missing") from None


@lru_cache(maxsize=None)
def tesselation_edges() -> np.ndarray:
    """(E, 2) unique undirected edges of MediaPipe's face mesh triangulation."""
    return np.array(sorted({tuple(sorted(e)) for e in _connections()["TESSELATION"]}), dtype=np.int64)


@lru_cache(maxsize=1)
def blendshape_names() -> tuple[str, ...]:
    """The 52 blendshape names in the Face Landmarker's order (`_neutral`, `browDownLeft`, ..., `noseSneerRight`)."""
    from mediapipe.tasks.python.vision.face_landmarker import Blendshapes

    def camel(name: str) -> str:
        head, *rest = name.lower().split("_")
        return head + "".join(w.capitalize() for w in rest)

    names = [("_neutral" if b.name == "NEUTRAL" else camel(b.name)) for b in sorted(Blendshapes, key=int)]
    assert len(names) == N_BLENDSHAPES
    return tuple(names)


def blendshape_columns() -> tuple[str, ...]:
    """Table column names for the blendshapes: `bs_` + name (`bs_neutral`, `bs_browDownLeft`, ...), apart from class names."""
    return tuple("bs_" + n.lstrip("_") for n in blendshape_names())


class MeshResult(NamedTuple):
    """What the Face Landmarker gives for one face crop."""

    points: np.ndarray  # (468, 3) float32 in crop units
    blendshapes: np.ndarray  # (52,) float32 coefficients in 0..1, in `blendshape_names()` order


@dataclass
class MeshConfig:
    """How the Face Landmarker is run on a crop."""

    input_size: int = 192  # crops are upscaled to this; the mesh model's own input is 192 px
    pad: float = 0.25  # black border, as a fraction of input_size: the landmarker's face detector misses faces that fill the frame
    min_detection_confidence: float = 0.3  # FER crops are small and blurry; 0.5 loses more faces


class FaceMesh:
    """MediaPipe's Face Landmarker (468 mesh points and 52 blendshapes) on single face crops.

    Runs in IMAGE mode: every crop is a new picture. The webcam and video keep their own tracks
    of face boxes (`stream.py`, `video.py`) and hand the mesh one crop per track, so a crop
    stream never mixes faces. One instance is not thread-safe inside MediaPipe, so calls are
    serialised with a lock.
    """

    def __init__(self, config: MeshConfig | None = None, model_file: str | os.PathLike = TASK_FILE) -> None:
        from mediapipe.tasks.python.core.base_options import BaseOptions
        from mediapipe.tasks.python.vision import FaceLandmarker, FaceLandmarkerOptions
        from mediapipe.tasks.python.vision.core.vision_task_running_mode import VisionTaskRunningMode

        self.config = config or MeshConfig()
        conf = self.config.min_detection_confidence
        options = FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=read_task_file(model_file)),
            running_mode=VisionTaskRunningMode.IMAGE, num_faces=1, min_face_detection_confidence=conf,
            min_face_presence_confidence=conf, output_face_blendshapes=True)
        self._landmarker = FaceLandmarker.create_from_options(options)
        # This finaliser holds the landmarker, so MediaPipe's own __del__ never closes it: inside a garbage
        # collection the landmarker's worker thread may already have been told to stop (its executor unreachable
        # too), and the close would wait for it forever; after the interpreter has torn its modules down it fails
        # with a traceback. The finaliser runs when the mesh is freed, or at exit (atexit) for one still open.
        self._finalizer = weakref.finalize(self, self._landmarker.close)
        self._lock = PriorityLock()

    def close(self) -> None:
        self._finalizer()

    def __call__(self, crop: np.ndarray, urgent: bool = False) -> MeshResult | None:
        """Runs the landmarker on one face crop.

        Args:
            crop: (S, S) grey or (S, S, 3) RGB uint8 face crop.
            urgent: a live frame's crop: served before others waiting for the mesh.

        Returns:
            The face's points in crop units (x, y in 0..1 across the crop) and its blendshapes, or
            None when the landmarker finds no face.
        """
        import mediapipe as mp

        if crop.ndim == 2:
            crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2RGB)
        h, w = crop.shape[:2]
        size = self.config.input_size
        img = cv2.resize(crop, (size, size), interpolation=cv2.INTER_CUBIC if size > w else cv2.INTER_AREA)
        p = int(round(self.config.pad * size))
        if p:
            img = cv2.copyMakeBorder(img, p, p, p, p, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(img))
        with self._lock(urgent):
            res = self._landmarker.detect(image)
        if not res.face_landmarks:
            return None
        full = size + 2 * p
        pts = np.array([(lm.x, lm.y, lm.z) for lm in res.face_landmarks[0][:N_POINTS]], dtype=np.float32)
        pts[:, :2] = (pts[:, :2] * full - p) / size
        pts[:, 2] = pts[:, 2] * full / size  # MediaPipe scales z like x, in units of the padded image
        shapes = np.zeros(N_BLENDSHAPES, np.float32)
        if res.face_blendshapes:
            for c in res.face_blendshapes[0]:
                shapes[c.index] = c.score
        return MeshResult(pts, shapes)


def normalize(points: np.ndarray, roll: bool = True) -> np.ndarray:
    """Per-face normalisation: centre, scale and (optionally) roll.

    Args:
        points: (..., 468, 3) landmarks in any consistent units.
        roll: rotate about the centre so the line between the eye centres is horizontal.

    Returns:
        (..., 468, 3) float32: mean point at 0, RMS distance (x, y) from the centre 1.
    """
    pts = np.asarray(points, dtype=np.float32)
    out = pts - pts.mean(axis=-2, keepdims=True)
    if roll:
        left, right = eye_indices()
        d = out[..., right, :2].mean(axis=-2) - out[..., left, :2].mean(axis=-2)  # (..., 2)
        ang = np.arctan2(d[..., 1], d[..., 0])
        c, s = np.cos(-ang)[..., None], np.sin(-ang)[..., None]
        x, y = out[..., 0].copy(), out[..., 1].copy()
        out[..., 0] = c * x - s * y
        out[..., 1] = s * x + c * y
    rms = np.sqrt((out[..., :2] ** 2).sum(axis=-1).mean(axis=-1))[..., None, None]
    return (out / np.maximum(rms, 1e-6)).astype(np.float32)


@lru_cache(maxsize=None)
def mirror_index() -> np.ndarray:
    """(468,) permutation: point i of a face is point `mirror_index()[i]` of its mirror image.

    Derived, not typed: the meshes of 1,000 FER2013 faces were matched with the meshes of their
    flips (`python -m fusion_fer.research.mirror`).
    """
    data = json.loads(MIRROR_INDEX_FILE.read_text())
    index = np.array(data["index"], dtype=np.int64)
    assert index.shape == (N_POINTS,) and np.array_equal(np.sort(index), np.arange(N_POINTS))
    return index


def mirror(points: np.ndarray, center_x: float = 0.0) -> np.ndarray:
    """Landmarks of the horizontally flipped face.

    Reflects x about `center_x` (0 for normalised points, 0.5 for crop units) and swaps
    left and right points, so index i keeps its anatomical meaning.

    Args:
        points: (..., 468, 3) landmarks.
        center_x: x of the vertical flip axis.
    """
    out = np.asarray(points)[..., mirror_index(), :].copy()
    out[..., 0] = 2.0 * center_x - out[..., 0]
    return out


@dataclass
class LandmarkStats:
    """Training-set mean and std of the flattened normalised landmarks; saved with the model."""

    mean: np.ndarray  # (468 * 3,)
    std: np.ndarray  # (468 * 3,)

    @classmethod
    def fit(cls, normalized: np.ndarray, found: np.ndarray | None = None) -> "LandmarkStats":
        """Fits on (N, 468, 3) normalised points; rows where `found` is False are ignored."""
        flat = normalized.reshape(len(normalized), -1).astype(np.float64)
        if found is not None:
            flat = flat[np.asarray(found, dtype=bool)]
        if len(flat) == 0:
            raise ValueError("cannot fit landmark statistics: no face has landmarks")
        std = flat.std(axis=0)
        return cls(flat.mean(axis=0).astype(np.float32), np.maximum(std, 1e-6).astype(np.float32))

    def __call__(self, normalized: np.ndarray) -> np.ndarray:
        """(..., 468, 3) normalised points -> (..., 1404) standardised float32 features."""
        flat = np.asarray(normalized, dtype=np.float32).reshape(*normalized.shape[:-2], -1)
        return (flat - self.mean) / self.std

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "LandmarkStats":
        return cls(np.asarray(d["mean"], dtype=np.float32), np.asarray(d["std"], dtype=np.float32))
