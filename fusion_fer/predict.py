"""The single inference entry point: `Predictor.predict(image) -> list[FaceResult]`.

    from fusion_fer import load_predictor
    p = load_predictor()                 # the shipped artifacts/
    for face in p.predict("photo.jpg"):
        print(face.label, face.probs["happy"], face.box)
"""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .artifacts import load_artifacts
from .faces import FaceConfig, FaceCrops, FaceDetector, whole_image_crop
from .imageio import ImageInput
from .landmarks import N_BLENDSHAPES, N_POINTS, FaceMesh, MeshConfig, blendshape_names
from .locks import thread_niceness
from .model import flip_average, with_mirrors
from .transforms import guide_grid, images_to_tensor, landmark_features, soften, zoom_crops, zoom_points


@dataclass
class FaceResult:
    """One face's prediction.

    Attributes:
        box: (x1, y1, x2, y2) in the input image's pixels (the whole image with detect=False).
        label: the most probable class.
        probs: {class: probability} over the model's classes (7, or 8 with contempt), summing to 1.
        landmarks: (468, 3) mesh points in input-image pixels (z in the same scale as x), or None
            when the mesh found none.
        detection_prob: MTCNN's face probability (1.0 with detect=False).
        cut_by_edge: the face's box reaches beyond the photo's edge: part of the face is not in the picture
            (its crop is completed by repeating the border, as training's shifted faces were).
        blendshapes: {name: coefficient in 0..1} for MediaPipe's 52 blendshapes (`browDownLeft`,
            `jawOpen`, ...), or None when the mesh found none. They measure facial movements, not
            emotions; the expression is `label`.
    """

    box: tuple[float, float, float, float]
    label: str
    probs: dict[str, float]
    landmarks: np.ndarray | None = field(default=None, repr=False)
    detection_prob: float = 1.0
    blendshapes: dict[str, float] | None = field(default=None, repr=False)
    cut_by_edge: bool = False

    @property
    def confidence(self) -> float:
        return self.probs[self.label]

    def scaled(self, factor: float) -> FaceResult:
        """The same face with its box and landmarks multiplied by `factor` (to another size of the image)."""
        if factor == 1.0:
            return self
        lm = None if self.landmarks is None else (self.landmarks * np.float32(factor)).astype(np.float32)
        return replace(self, box=tuple(float(v) * factor for v in self.box), landmarks=lm)

    def top_blendshapes(self, k: int = 5) -> list[tuple[str, float]]:
        """The k strongest blendshapes, strongest first (MediaPipe's `_neutral` left out); [] without a mesh."""
        if not self.blendshapes:
            return []
        items = [(n, v) for n, v in self.blendshapes.items() if n != "_neutral"]
        return sorted(items, key=lambda kv: -kv[1])[:k]

    def to_dict(self, with_landmarks: bool = False, with_blendshapes: bool = True) -> dict:
        """JSON-friendly form."""
        d = {"box": [round(float(v), 1) for v in self.box], "label": self.label, "confidence": round(self.confidence, 4),
             "probs": {k: round(v, 4) for k, v in self.probs.items()}, "detection_prob": round(self.detection_prob, 4),
             "landmarks_found": self.landmarks is not None, "cut_by_edge": self.cut_by_edge}
        if with_blendshapes:
            d["blendshapes"] = None if self.blendshapes is None else {k: round(v, 4) for k, v in self.blendshapes.items()}
        if with_landmarks and self.landmarks is not None:
            d["landmarks"] = np.round(self.landmarks[:, :2], 1).tolist()
        return d


class Predictor:
    """Face detection -> crop -> Face Landmarker (mesh and blendshapes) -> fused classifier, with flip averaging.

    Build it once (it loads MTCNN, the Face Landmarker and the model) and call `predict` per image.
    Safe to call from several threads.
    """

    def __init__(self, path: str | os.PathLike | None = None, device: str = "cpu", flip: bool = True,
                 share: Predictor | None = None) -> None:
        """`path`: a shipped model's name ("ferplus", "fer2013"), a model folder, or None for the default.
        `share`: another Predictor whose MTCNN and the Face Landmarker this one reuses when its settings are the same
        (an app serving several models keeps one detector in memory)."""
        self.device = torch.device(device)
        self.model, self.stats, self.config = load_artifacts(path, self.device)
        self.name = os.path.basename(os.path.normpath(self.config["folder"]))
        self.model = self.model.to(memory_format=torch.channels_last)
        self.classes: tuple[str, ...] = tuple(self.config["classes"])
        self.temperature = float(self.config.get("temperature", 1.0))
        # Per-class offsets (evaluate.fit_class_bias on PublicTest, or research.select), applied before the temperature.
        self.class_bias = torch.tensor(self.config.get("class_bias", [0.0] * len(self.classes)), dtype=torch.float32)
        self.flip = flip
        self.zooms = tuple(self.config.get("zooms", [1.0]))  # test-time framings (evaluate --zooms auto, or research.select)
        # The webcam's recipe: fewer framings (each with its mirror) for speed; the stream's smoothing covers the
        # rest. Chosen on the selection data (export --live-report); else the framing nearest the training one.
        self.live_zooms = tuple(self.config.get("live_zooms", [min(self.zooms, key=lambda z: abs(z - 1.0))]))
        self.soften = float(self.config.get("soften", 0.0))  # Gaussian sigma in crop pixels before the network (research.select)
        self.face_config = FaceConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in self.config["face"].items()})
        self.crop_size = 48  # the cache's crop size: the mesh runs on what training's mesh saw
        mesh_config = MeshConfig(**self.config["mesh"])
        if share is not None and share.face_config == self.face_config and share.mesh.config == mesh_config and share.device == self.device:
            self.detector, self.mesh = share.detector, share.mesh
        else:
            self.detector = FaceDetector(self.face_config, device=self.device)
            self.mesh = FaceMesh(mesh_config)

    def predict(self, image: ImageInput, detect: bool = True, detect_max_side: int | None = None,
                min_face_fraction: float | None = None, urgent: bool = False, live: bool = False,
                edge_pass: bool = True) -> list[FaceResult]:
        """Predicts the expression of every face.

        Args:
            image: path, bytes, PIL image or numpy array (RGB uint8 or grey).
            detect: False treats the whole image as one face crop (like FER2013 images).
            detect_max_side, min_face_fraction: detection speed settings (see `FaceDetector.detect`);
                the webcam stream uses `StreamState`'s.
            urgent: a live frame: it goes before photos waiting for the detector and the mesh.
            live: the webcam's recipe (`live_zooms`, fewer views) instead of the photo one.
            edge_pass: also look for large faces cut by the frame (`FaceDetector.detect`).

        Returns:
            One FaceResult per face, largest first, in the input's pixels; an empty list when no face
            is found. A big photo given as a file or bytes is decoded at about the detection size
            (`load_image_scaled`); a crop taken there is the same 48 px crop, so only memory changes.

        Raises:
            ImageLoadError: the input is not a readable image.
        """
        if not detect:
            return self._classify(whole_image_crop(image, self.crop_size), live=live)
        found = self.find_faces(image, detect_max_side, min_face_fraction, urgent, edge_pass)
        return [r.scaled(1 / found.scale) for r in self._classify(found, urgent=urgent, live=live)]

    def predict_at(self, image: ImageInput, boxes: list[tuple[float, float, float, float]], urgent: bool = False,
                   live: bool = False) -> list[FaceResult]:
        """Classifies the faces at known boxes, without detection (a tracker's boxes between detections).

        Args:
            image: numpy array (RGB uint8 or grey), PIL image, path or bytes, at the boxes' scale.
            boxes: (x1, y1, x2, y2) face boxes as `FaceDetector.detect` draws them.
            urgent, live: as in `predict`.

        Returns:
            One FaceResult per box, in order. `landmarks` is None where the mesh found no face in the box:
            the face has left it (a tracker then detects again).
        """
        if not boxes:
            return []
        return self._classify(self.detector.at(image, boxes, self.crop_size), urgent=urgent, live=live)

    def find_faces(self, image: ImageInput, detect_max_side: int | None = None, min_face_fraction: float | None = None,
                   urgent: bool = False, edge_pass: bool = True) -> FaceCrops:
        """The detection half of `predict`: every face (largest first) and its grey crop as the network's
        preprocessing sees it (`FaceDetector.find`)."""
        return self.detector.find(image, self.crop_size, detect_max_side, min_face_fraction, urgent, edge_pass)

    def predict_batch(self, images: list[ImageInput], detect: bool = False) -> list[list[FaceResult]]:
        """Predicts many images; with detect=False (face crops) all go through the model in one batch."""
        if detect:
            return [self.predict(im, detect=True) for im in images]
        parts = [whole_image_crop(im, self.crop_size) for im in images]
        batch = FaceCrops([p.faces[0] for p in parts], np.concatenate([p.crops for p in parts]),
                          np.concatenate([p.to_image for p in parts]), np.zeros(len(parts), bool), 1.0)
        return [[r] for r in self._classify(batch)]

    def mesh_points(self, crops, urgent: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The Face Landmarker on each crop-size grey crop: (N, 468, 3) crop-unit landmarks (zeros where none),
        (N,) found and (N, 52) blendshapes (zeros where none)."""
        res = [self.mesh(c, urgent=urgent) for c in crops]
        found = np.array([r is not None for r in res], bool)
        points = np.zeros((len(res), N_POINTS, 3), np.float32)
        shapes = np.zeros((len(res), N_BLENDSHAPES), np.float32)
        for i, r in enumerate(res):
            if r is not None:
                points[i], shapes[i] = r
        return points, found, shapes

    def crop_probs(self, crops: np.ndarray, points: np.ndarray, found: np.ndarray, live: bool = False) -> np.ndarray:
        """The served probabilities (N, classes) of grey crops whose mesh is known: framings, mirror, softening,
        class offsets and temperature, as `predict` gives them (evaluation on prepared caches uses this too)."""
        return self._probs(crops, _known_mesh(points, found), live)

    @torch.inference_mode()
    def _probs(self, crops: np.ndarray, mesh: Future, live: bool) -> np.ndarray:
        logp = _log_probs(self.model, crops, mesh, self.stats, self.device, self.flip,
                          False, self.live_zooms if live else self.zooms, self.soften)
        return torch.softmax((logp.cpu() + self.class_bias) / self.temperature, dim=1).numpy()

    @torch.inference_mode()
    def _classify(self, found: FaceCrops, urgent: bool = False, live: bool = False) -> list[FaceResult]:
        if not found.faces:
            return []
        mesh = _mesh_threads().submit(self.mesh_points, found.crops, urgent)  # the network's image branch runs meanwhile
        probs = self._probs(found.crops, mesh, live)
        points, ok, shapes = mesh.result()
        # the crop's inverse (found.to_image) takes the landmarks to the image's pixels
        image_points = np.concatenate([points, np.ones((*points.shape[:2], 1), np.float32)], axis=2) @ found.to_image.transpose(0, 2, 1)
        names = blendshape_names()
        results = []
        for i, face in enumerate(found.faces):
            p = {c: float(v) for c, v in zip(self.classes, probs[i])}
            lm = image_points[i, :, :3].astype(np.float32) if ok[i] else None
            bs = {n: float(v) for n, v in zip(names, shapes[i])} if ok[i] else None
            results.append(FaceResult(face.box, max(p, key=p.get), p, lm, face.prob, bs, bool(found.cut[i])))
        return results


_MESH_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _mesh_threads() -> ThreadPoolExecutor:
    """Where a batch's mesh runs beside the network (`_log_probs`): threads at the caller's CPU priority, so
    a photo's mesh stays behind live frames as the photo does (`serving.BackgroundPool`). A new thread
    inherits its creator's nice value, and a pool's threads are made by callers of its own niceness.
    Several threads a pool, so a live frame's mesh need not queue behind a photo's: the Face Landmarker's
    own lock orders them, urgent first."""
    nice = thread_niceness()
    with _POOLS_LOCK:
        if nice not in _MESH_POOLS:
            _MESH_POOLS[nice] = ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"fusion-fer-mesh-nice{nice}")
        return _MESH_POOLS[nice]


@torch.inference_mode()
def log_probs(model, crops: np.ndarray, points: np.ndarray, found: np.ndarray, stats, device: torch.device,
              flip: bool = True, bf16: bool = False, zooms: tuple[float, ...] = (1.0,), soften_sigma: float = 0.0) -> torch.Tensor:
    """The eval preset and the model, shared by serving and evaluation.

    Args:
        crops: (B, S, S) uint8 grey face crops; points: (B, 468, 3) crop-unit landmarks; found: (B,) bool.
        zooms: framings to average (`transforms.zoom_crops`), each with its mirror when `flip`.
        soften_sigma: blur the crops the network sees (not the mesh) by this Gaussian sigma, in crop pixels.

    Returns:
        (B, classes) float32 log-probabilities, averaged over the framings (and flips).
    """
    return _log_probs(model, crops, _known_mesh(points, found), stats, device, flip, bf16, zooms, soften_sigma)


def _known_mesh(points: np.ndarray, found: np.ndarray) -> Future:
    """A mesh found already, in the form `_log_probs` waits on."""
    mesh: Future = Future()
    mesh.set_result((points, found))
    return mesh


def _log_probs(model, crops: np.ndarray, mesh: Future, stats, device: torch.device, flip: bool, bf16: bool,
               zooms: tuple[float, ...], soften_sigma: float) -> torch.Tensor:
    """`log_probs` where the mesh may still be running: `mesh` gives (points, found, ...) when done. The image
    branch needs no landmarks, so it runs first, beside the mesh."""
    n, cfg = len(crops), model.config
    views = np.concatenate([zoom_crops(crops, z) for z in zooms])
    x = images_to_tensor(soften(views, soften_sigma), cfg.image_size).to(device).contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        with _beside_the_mesh(device.type == "cpu" and not mesh.done()):
            encoded = model.image_maps(with_mirrors(x) if flip else x)
        points, found = mesh.result()[:2]
        points = np.concatenate([zoom_points(points, z) for z in zooms])
        found = np.concatenate([found] * len(zooms))
        z, zm = landmark_features(points, found, stats)
        zt, zmt, ft = (torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in (z, zm, found))
        g = guide_grid(points, cfg.guide_points).to(device) if cfg.uses_points else None
        if flip:
            logp = flip_average(model, x, zt, zmt, ft, g, encoded=encoded)
        else:
            logp = torch.log_softmax(model(x, zt, ft, g, encoded=encoded).float(), dim=1)
    logp = logp.float()
    if len(zooms) > 1:
        logp = torch.log(torch.exp(logp).reshape(len(zooms), n, -1).mean(0))
    return logp


@contextmanager
def _beside_the_mesh(active: bool) -> Iterator[None]:
    """torch on one thread while the Face Landmarker runs on another core: on a few cores, the two overlap
    instead of taking turns (a webcam frame's mesh and network take about 10 ms together instead of 16).
    With two threads, torch and MediaPipe would contend for the same cores and gain nothing.

    With OpenMP the thread count is the calling thread's own, so concurrent requests don't undo each other."""
    n = torch.get_num_threads()
    if not active or n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def load_predictor(model: str | os.PathLike | None = None, device: str = "cpu", flip: bool = True,
                   share: Predictor | None = None) -> Predictor:
    """Loads a shipped model by name (`load_predictor("ferplus")`, `load_predictor("fer2013")`), the
    default one (`load_predictor()`, see artifacts/models.json), or the model folder at `model`."""
    return Predictor(model, device=device, flip=flip, share=share)
