"""Landmarks: MediaPipe Face Mesh on a face crop, per-face normalisation, standardisation, mirroring.

Coordinates through the pipeline:
  * `FaceMesh.__call__` returns (468, 3) points in *crop units*: x, y in 0..1 across the crop
    (z on the same scale as x), so they do not depend on the crop's pixel size.
  * `normalize` makes them independent of where the face sits and how big it is (and, by default,
    of head roll): centred on the mean point, divided by the RMS radius, eye line horizontal.
  * `LandmarkStats` standardises the flattened normalised points with the training set's mean/std.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from .locks import PriorityLock

N_POINTS = 468
ASSETS = Path(__file__).resolve().parent / "assets"
MIRROR_INDEX_FILE = ASSETS / "mesh_mirror_index.json"


def _connection_vertices(name: str) -> np.ndarray:
    from mediapipe.python.solutions import face_mesh_connections as fmc

    return np.array(sorted({v for edge in getattr(fmc, name) for v in edge}), dtype=np.int64)


@lru_cache(maxsize=None)
def eye_indices() -> tuple[np.ndarray, np.ndarray]:
    """Mesh indices of the image-left and image-right eye contours (MediaPipe's own sets).

    MediaPipe names eyes from the subject's view: its RIGHT_EYE appears on the image's left.
    """
    return _connection_vertices("FACEMESH_RIGHT_EYE"), _connection_vertices("FACEMESH_LEFT_EYE")


def guide_indices() -> tuple[int, ...]:
    """Mesh points where the fused model reads the CNN's feature maps (`FusionConfig.guide_points`).

    MediaPipe's contours (lips, eyes, brows, face oval) and nose: the parts that move with an
    expression. Closed under mirroring, so a flipped face reads the same set of places.
    """
    names = ("FACEMESH_CONTOURS", "FACEMESH_NOSE")
    pts = set(np.concatenate([_connection_vertices(n) for n in names]).tolist())
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
    from mediapipe.python.solutions import face_mesh_connections as fmc

    return np.array(sorted({tuple(sorted(e)) for e in fmc.FACEMESH_TESSELATION}), dtype=np.int64)


@dataclass
class MeshConfig:
    """How Face Mesh is run on a crop."""

    input_size: int = 192  # crops are upscaled to this; the mesh model's own input is 192 px
    pad: float = 0.25  # black border, as a fraction of input_size: the mesh's face detector misses faces that fill the frame
    min_detection_confidence: float = 0.3  # FER crops are small and blurry; 0.5 loses ~2 % more faces


class FaceMesh:
    """MediaPipe Face Mesh (468 points) on single face crops.

    The model ships inside the mediapipe 0.10.21 wheel. One instance is not thread-safe inside
    MediaPipe, so calls are serialised with a lock.
    """

    def __init__(self, config: MeshConfig | None = None, static: bool = True) -> None:
        import mediapipe as mp

        self.config = config or MeshConfig()
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static, max_num_faces=1, refine_landmarks=False,
            min_detection_confidence=self.config.min_detection_confidence,
        )
        self._lock = PriorityLock()

    def close(self) -> None:
        self._mesh.close()

    def __call__(self, crop: np.ndarray, urgent: bool = False) -> np.ndarray | None:
        """Runs the mesh on one face crop.

        Args:
            crop: (S, S) grey or (S, S, 3) RGB uint8 face crop.
            urgent: a live frame's crop: served before others waiting for the mesh.

        Returns:
            (468, 3) float32 points in crop units (x, y in 0..1 across the crop), or None when
            the mesh finds no face.
        """
        if crop.ndim == 2:
            crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2RGB)
        h, w = crop.shape[:2]
        size = self.config.input_size
        img = cv2.resize(crop, (size, size), interpolation=cv2.INTER_CUBIC if size > w else cv2.INTER_AREA)
        p = int(round(self.config.pad * size))
        if p:
            img = cv2.copyMakeBorder(img, p, p, p, p, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        with self._lock(urgent):
            res = self._mesh.process(img)
        if not res.multi_face_landmarks:
            return None
        full = size + 2 * p
        pts = np.array([(lm.x, lm.y, lm.z) for lm in res.multi_face_landmarks[0].landmark], dtype=np.float32)
        pts[:, :2] = (pts[:, :2] * full - p) / size
        pts[:, 2] = pts[:, 2] * full / size  # MediaPipe scales z like x, in units of the padded image
        return pts


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
