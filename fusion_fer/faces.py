"""Face detection (facenet-pytorch MTCNN) and the face crop that the model sees.

The crop is calibrated to FER2013's framing: `FaceConfig.crop_scale` and `crop_shift_y` come
from running MTCNN on upscaled FER2013 training images and comparing its boxes with the 48x48
frame (`python -m fusion_fer.research.calibrate --data ...`; figures in docs/calibration.md). So a face in a
holiday photo reaches the model framed the way the training faces were.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from PIL import Image

from .imageio import ImageInput, read_rgb
from .locks import PriorityLock


@dataclass
class FaceConfig:
    """How faces are found and cropped."""

    min_face_fraction: float = 0.08  # smallest face, as a fraction of the image's shorter side
    min_face_px: int = 20  # ...but never below MTCNN's useful floor (pixels, after downscaling)
    detect_max_side: int = 960  # detect on a copy whose long side is at most this (speed; boxes are scaled back)
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)  # P-, R-, O-net thresholds (facenet-pytorch defaults)
    min_prob: float = 0.90  # faces below this O-net probability are dropped
    factor: float = 0.709  # image pyramid step
    edge_pad: float = 0.05  # pad the detection copy by this share of its long side (mean colour): finds faces the frame cuts
    min_inside: float = 0.4  # drop boxes with less of their area inside the image (what padding would add falsely)
    # The edge pass: large faces cut by the frame (a selfie-taker's own face). MTCNN needs most of a face in view,
    # so a second, small copy is padded by reflecting the photo (a half face and its mirror read as a face);
    # only boxes that reach the frame's edge, with their centre inside it, are taken from it.
    edge_pass: bool = True
    edge_pass_pad: float = 0.3  # reflected border, as a share of the long side (a face half beyond the edge fits in it)
    edge_side: int = 200  # the edge pass's padded copy is at most this long (its cost grows with it)
    edge_min_face: float = 0.25  # smallest face the edge pass looks for, as a share of the shorter side: a face cut
    # by the frame that is smaller than this is the first pass's (its edge padding); the pass is for large ones
    # Calibrated on 2,000 FER2013 training faces (docs/calibration.md): FER's 48 px frame is
    # 1.08x the MTCNN box side (median; IQR 1.00-1.19), centred 0.011 box sides above the box centre.
    crop_scale: float = 1.08
    crop_shift_y: float = -0.011  # + moves the crop down, as a fraction of the box side
    align: bool = False  # rotate so the eyes are level; off because FER2013 is not (median |roll| 4.4 deg)
    # The browser app's live view finds and follows faces with the Face Landmarker (its photos use MTCNN, as
    # here): FER's frame is 1.143x the side of the 468 mesh points' bounding box, centred 0.061 of it above the
    # box's centre (2,000 FER2013 training faces, `python -m fusion_fer.research.calibrate --mesh`;
    # docs/calibration.md).
    mesh_crop_scale: float = 1.143
    mesh_crop_shift_x: float = -0.002
    mesh_crop_shift_y: float = -0.061


@dataclass
class Face:
    """One detected face, in the pixel coordinates of the input image.

    Attributes:
        box: (x1, y1, x2, y2).
        prob: MTCNN's face probability.
        keypoints: (5, 2) array: eye, eye, nose, mouth corner, mouth corner, as MTCNN orders
            them (image-left eye first).
    """

    box: tuple[float, float, float, float]
    prob: float
    keypoints: np.ndarray = field(repr=False)

    @property
    def size(self) -> float:
        """Side of the box's square equivalent, in pixels."""
        x1, y1, x2, y2 = self.box
        return math.sqrt(max(x2 - x1, 1e-6) * max(y2 - y1, 1e-6))

    def cut_by(self, width: int, height: int) -> bool:
        """True when the face's box reaches beyond a `width` x `height` image's edge (part of the face is not in it)."""
        x1, y1, x2, y2 = self.box
        margin = 0.02 * self.size  # MTCNN's boxes jitter by a few pixels: a face that only touches the edge is whole
        return x1 < -margin or y1 < -margin or x2 > width + margin or y2 > height + margin

    @property
    def roll(self) -> float:
        """Angle of the eye line in degrees (positive: the image-right eye is lower)."""
        (lx, ly), (rx, ry) = self.keypoints[0], self.keypoints[1]
        return math.degrees(math.atan2(ry - ly, rx - lx))


class FaceDetector:
    """Finds every face in an image with MTCNN and crops them the way the model expects.

    The MTCNN weights ship inside the facenet-pytorch wheel: nothing is downloaded.
    The detector is safe to share between threads (the app serves several requests at once).
    """

    def __init__(self, config: FaceConfig | None = None, device: str | torch.device = "cpu") -> None:
        from facenet_pytorch import MTCNN  # heavy import, kept local

        self.config = config or FaceConfig()
        self.device = torch.device(device)
        self._mtcnn = MTCNN(device=self.device, keep_all=True, select_largest=True)
        self._mtcnn.eval()
        self._lock = PriorityLock()

    def min_face_size(self, height: int, width: int, fraction: float | None = None) -> int:
        """Smallest face (pixels, in the image given to MTCNN) for an image of this size."""
        fraction = self.config.min_face_fraction if fraction is None else fraction
        return max(self.config.min_face_px, int(round(fraction * min(height, width))))

    def detect(self, image: ImageInput, max_side: int | None = None, min_face_fraction: float | None = None,
               urgent: bool = False, edge_pass: bool = True) -> list[Face]:
        """Detects faces.

        Args:
            image: path, bytes, PIL image or numpy array (RGB uint8 or grey).
            max_side: detect on a copy downscaled to this long side (default `config.detect_max_side`);
                boxes come back in the input's pixels.
            min_face_fraction: smallest face as a share of the shorter side (default
                `config.min_face_fraction`). MTCNN's cost is set by its image pyramid, which starts
                at this size: webcam streams, whose faces are large, use 0.2 and run ~4x faster.
            urgent: a live frame: served before photos waiting for the detector.
            edge_pass: also look for large faces cut by the frame (`FaceConfig.edge_pass`); the webcam's
                frequent detections leave it out.

        Returns:
            Faces sorted largest first; an empty list when there is none. A face cut by the frame
            keeps its whole box, which then reaches outside the image (`Face.cut_by`).

        Raises:
            ImageLoadError: the input is not a readable image.
        """
        return self._detect(read_rgb(image)[0], max_side, min_face_fraction, urgent, edge_pass)

    @torch.inference_mode()
    def _detect(self, rgb: np.ndarray, max_side: int | None, min_face_fraction: float | None, urgent: bool,
                edge_pass: bool) -> list[Face]:
        h, w = rgb.shape[:2]
        scale = min(1.0, (max_side or self.config.detect_max_side) / max(h, w))
        small = rgb if scale == 1.0 else cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        sh, sw = small.shape[:2]
        min_face = self.min_face_size(sh, sw, min_face_fraction)
        if min(sh, sw) < min_face:
            return []
        # MTCNN needs a whole face in view: a face cut by the frame is completed with plain colour
        faces = self._mtcnn_pass(small, scale, self.config.edge_pad, cv2.BORDER_CONSTANT, min_face, urgent)
        faces = [f for f in faces if self._inside_enough(f.box, w, h)]
        if edge_pass and self.config.edge_pass:
            faces += self._edge_pass(rgb, faces, urgent)
        faces.sort(key=lambda f: f.size, reverse=True)
        return faces

    def _mtcnn_pass(self, img: np.ndarray, scale: float, pad_share: float, border: int, min_face: int,
                    urgent: bool) -> list[Face]:
        """MTCNN on `img` (the photo downscaled by `scale`) padded by `pad_share` of its long side with `border`;
        faces above `min_prob`, in the photo's pixels."""
        from facenet_pytorch.models.utils.detect_face import detect_face

        pad = int(round(pad_share * max(img.shape[:2])))
        if pad:
            fill = [int(v) for v in img.reshape(-1, 3).mean(axis=0)] if border == cv2.BORDER_CONSTANT else None
            img = cv2.copyMakeBorder(img, pad, pad, pad, pad, border, value=fill)
        # detect_face is functional, so we pass the minimum size per call instead of mutating
        # the shared MTCNN object; the lock only guards torch's thread pool from oversubscription.
        with self._lock(urgent):
            boxes, points = detect_face(
                img, min_face, self._mtcnn.pnet, self._mtcnn.rnet, self._mtcnn.onet,
                list(self.config.thresholds), self.config.factor, self.device,
            )
        boxes, points = np.asarray(boxes[0]), np.asarray(points[0])
        faces = []
        for box, pts in zip(boxes.reshape(-1, 5), points.reshape(-1, 5, 2)):
            if box[4] >= self.config.min_prob:
                x1, y1, x2, y2 = ((float(v) - pad) / scale for v in box[:4])
                faces.append(Face((x1, y1, x2, y2), float(box[4]), ((pts - pad) / scale).astype(np.float32)))
        return faces

    def _inside_enough(self, box, w: int, h: int) -> bool:
        x1, y1, x2, y2 = box
        inside = max(0.0, min(x2, w) - max(x1, 0.0)) * max(0.0, min(y2, h) - max(y1, 0.0))
        return inside >= self.config.min_inside * max(1e-6, (x2 - x1) * (y2 - y1))

    def _edge_pass(self, rgb: np.ndarray, found: list[Face], urgent: bool) -> list[Face]:
        """Large faces cut by the frame that the first pass missed (see `FaceConfig.edge_pass`).

        A box is taken only when it crosses the frame's edge, its centre is inside the frame (a mirrored
        half face seen from the padding has its centre outside), and it overlaps no face already found."""
        h, w = rgb.shape[:2]
        c = self.config
        scale = min(1.0, c.edge_side / ((1 + 2 * c.edge_pass_pad) * max(h, w)))
        small = rgb if scale == 1.0 else cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        min_face = max(c.min_face_px, int(round(c.edge_min_face * min(small.shape[:2]))))
        if min(small.shape[:2]) < min_face:
            return []
        new: list[Face] = []
        for f in self._mtcnn_pass(small, scale, c.edge_pass_pad, cv2.BORDER_REFLECT_101, min_face, urgent):
            x1, y1, x2, y2 = f.box
            crosses = x1 < 0 or y1 < 0 or x2 > w or y2 > h
            centred = 0 <= (x1 + x2) / 2 < w and 0 <= (y1 + y2) / 2 < h
            if crosses and centred and self._inside_enough(f.box, w, h) and \
                    all(_overlap(f.box, g.box) < 0.3 for g in found + new):
                new.append(f)
        return new

    def crop(self, image: ImageInput, face: Face, size: int = 48, align: bool | None = None) -> np.ndarray:
        """Crops one face; see `crop_face`."""
        return crop_face(read_rgb(image)[0], face, size, self.config, align)

    def find(self, image: ImageInput, size: int = 48, max_side: int | None = None, min_face_fraction: float | None = None,
             urgent: bool = False, edge_pass: bool = True) -> FaceCrops:
        """Decodes the image (at about the detection size), finds every face (`detect`) and crops each to
        `size` grey as the network's preprocessing sees it. Raises ImageLoadError for an unreadable input."""
        rgb, scale = read_rgb(image, max_side or self.config.detect_max_side)
        faces = self._detect(rgb, max_side, min_face_fraction, urgent, edge_pass)
        return self._crops(rgb, faces, size, scale)

    def at(self, image: ImageInput, boxes: list[tuple[float, float, float, float]], size: int = 48) -> FaceCrops:
        """The faces at known boxes (a tracker's, between detections), cropped as `find` crops them."""
        rgb, _ = read_rgb(image)
        return self._crops(rgb, [_known_face(b) for b in boxes], size, 1.0)

    def _crops(self, rgb: np.ndarray, faces: list[Face], size: int, scale: float) -> FaceCrops:
        h, w = rgb.shape[:2]
        crops = [to_gray(crop_face(rgb, f, size, self.config)) for f in faces]
        return FaceCrops(faces, np.stack(crops) if crops else np.zeros((0, size, size), np.uint8),
                         np.stack([np.linalg.inv(_crop_matrix(f, size, self.config)) for f in faces]) if faces
                         else np.zeros((0, 4, 4)), np.array([f.cut_by(w, h) for f in faces], bool), scale)


@dataclass
class FaceCrops:
    """Faces of one image and their crops, as the network's preprocessing sees them.

    Attributes:
        faces: the detections, largest first, in the decoded image's pixels.
        crops: (N, S, S) uint8 grey crops.
        to_image: (N, 4, 4) matrices taking a crop's landmarks [x, y, z, 1] (crop units: x, y in 0..1 across
            the crop, z like x) to the decoded image's pixels: the inverse of the crop.
        cut: (N,) the face reaches beyond the image's edge (`Face.cut_by`).
        scale: the decoded image's size over the original's (a big file is decoded small).
    """

    faces: list[Face]
    crops: np.ndarray
    to_image: np.ndarray
    cut: np.ndarray
    scale: float


def _known_face(box) -> Face:
    """A pseudo-detection at a box given by the caller (no keypoints; probability 1)."""
    return Face(tuple(float(v) for v in box), 1.0, np.zeros((5, 2), np.float32))


def whole_image_crop(image: ImageInput, size: int = 48) -> FaceCrops:
    """An input that already is a face crop (like FER2013's images), resized to `size` grey."""
    rgb, _ = read_rgb(image)
    h, w = rgb.shape[:2]
    return FaceCrops([_known_face((0, 0, w, h))], resize_gray(to_gray(rgb), size)[None], np.diag([w, h, w, 1.0])[None],
                     np.zeros(1, bool), 1.0)


def _overlap(a, b) -> float:
    """Intersection over the smaller box's area: 1 when one box holds the other."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / max(smaller, 1e-6)


def crop_transform(face: Face, size: int, config: FaceConfig, align: bool | None = None) -> np.ndarray:
    """The 2x3 affine matrix that maps image pixels to the `size` x `size` face crop."""
    align = config.align if align is None else align
    x1, y1, x2, y2 = face.box
    side = face.size * config.crop_scale
    cx = (x1 + x2) / 2.0
    cy = (y1 + y2) / 2.0 + config.crop_shift_y * face.size
    angle = face.roll if align else 0.0
    s = size / side
    a = math.radians(angle)
    cos, sin = math.cos(a) * s, math.sin(a) * s
    # rotate by -roll around the crop centre, scale to the output, centre in the output
    return np.array(
        [[cos, sin, size / 2.0 - cos * cx - sin * cy],
         [-sin, cos, size / 2.0 + sin * cx - cos * cy]],
        dtype=np.float64,
    )


def crop_face(rgb: np.ndarray, face: Face, size: int = 48, config: FaceConfig | None = None,
              align: bool | None = None) -> np.ndarray:
    """Makes the square face crop the model sees, framed like FER2013.

    Args:
        rgb: (H, W, 3) uint8 image the face was detected in.
        face: the detection.
        size: output side in pixels.
        config: crop calibration; defaults to `FaceConfig()`.
        align: rotate so the eyes are level; defaults to `config.align`.

    Returns:
        (size, size, 3) uint8 RGB crop. Parts outside the image repeat the border pixels.
    """
    config = config or FaceConfig()
    m = crop_transform(face, size, config, align)
    side = face.size * config.crop_scale
    src = rgb
    # Shrinking a big face straight to 48 px aliases; box-filter it down first, to ~2x the output.
    k = int(side // (2 * size))
    if k >= 2:
        # Only the crop's neighbourhood is shrunk (a copy of the whole photo per face made big photos
        # costly); its corner sits on the k-grid, so the blocks, and the pixels, are those of the whole.
        inv = cv2.invertAffineTransform(m)
        corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64) @ inv.T
        h, w = rgb.shape[:2]
        x0 = min(max(0, (int(np.floor(corners[:, 0].min())) - 2 * k) // k * k), (w - 1) // k * k)
        y0 = min(max(0, (int(np.floor(corners[:, 1].min())) - 2 * k) // k * k), (h - 1) // k * k)
        x1 = max(min(w, int(np.ceil(corners[:, 0].max())) + 2 * k), x0 + 1)  # a face outside keeps the nearest block
        y1 = max(min(h, int(np.ceil(corners[:, 1].max())) + 2 * k), y0 + 1)
        # end on the k-grid too, or at the image's edge, where the whole photo's last block also ends
        x1, y1 = min(w, x0 + -(-(x1 - x0) // k) * k), min(h, y0 + -(-(y1 - y0) // k) * k)
        if x1 > x0 and y1 > y0:
            src = np.asarray(Image.fromarray(np.ascontiguousarray(rgb[y0:y1, x0:x1])).reduce(k))
            m = m.copy()
            m[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)
            m[:, :2] *= k
    return cv2.warpAffine(src, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _crop_matrix(face: Face, size: int, config: FaceConfig) -> np.ndarray:
    """(4, 4): the image's [x, y, z, 1] (pixels) -> crop units, as `crop_face` maps the pixels; z scales like x."""
    m = crop_transform(face, size, config) / size
    out = np.eye(4)
    out[:2, :2], out[:2, 3] = m[:, :2], m[:, 2]
    out[2, 2] = np.sqrt(abs(np.linalg.det(m[:, :2])))
    return out


def resize_gray(gray: np.ndarray, size: int) -> np.ndarray:
    """(H, W) uint8 grey -> (size, size): area-averaged when shrinking, bicubic when enlarging.

    Preprocessing and serving both call this, so the mesh sees the same pixels in both.
    """
    if gray.shape == (size, size):
        return gray
    interp = cv2.INTER_AREA if min(gray.shape) > size else cv2.INTER_CUBIC
    return cv2.resize(gray, (size, size), interpolation=interp)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 grey, with the same weights PIL uses for FER-style images."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
