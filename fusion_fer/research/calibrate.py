"""Measures how FER2013 frames a face, relative to an MTCNN box, to calibrate `FaceConfig`'s crop.

    python -m fusion_fer.research.calibrate --data ../shared/data/fer2013/fer2013_reconstructed.csv.gz
    python -m fusion_fer.research.calibrate --data ... --mesh     # relative to the Face Landmarker's mesh box

The mesh box (the bounding box of the 468 mesh points on the whole photo) is how the browser app finds
faces (MediaPipe's web tasks have no MTCNN); its calibration is `FaceConfig.mesh_crop_*`.

FER2013 faces are 48x48 crops whose framing was fixed by its authors' own face registration.
We upscale each training face 4x, put a grey border around it (MTCNN needs context to find a
face that fills the frame), detect, and express the 48 px frame in units of the MTCNN box.
`crop_face` then cuts the same frame around faces in real photos.
"""
from __future__ import annotations

import argparse
import json
import sys

import cv2
import numpy as np
from tqdm import tqdm

from .data import SPLITS, read_fer2013_csv
from ..faces import FaceConfig, FaceDetector


def mesh_boxes(rgb: np.ndarray, landmarker) -> list[tuple[float, float, float, float]]:
    """Bounding boxes of the 468 mesh points of every face the Face Landmarker finds in a whole photo."""
    import mediapipe as mp

    res = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
    h, w = rgb.shape[:2]
    out = []
    for face in res.face_landmarks:
        pts = np.array([(q.x * w, q.y * h) for q in face[:468]])
        out.append((*pts.min(axis=0), *pts.max(axis=0)))
    return out


def measure(images: np.ndarray, detector: FaceDetector | None, upscale: int = 4, pad: float = 0.5,
            landmarker=None) -> dict:
    """Detects faces in upscaled, padded FER crops (with MTCNN, or the mesh box when `landmarker` is given).

    Returns:
        Per found face: `scale` = frame side / box side, `shift_x`/`shift_y` = (frame centre -
        box centre) / box side, and `roll` in degrees; plus the detection rate.
    """
    side = images.shape[1]
    big = side * upscale
    p = int(round(pad * big))
    rows = []
    for img in tqdm(images, desc="calibrate", unit="img"):
        up = cv2.resize(img, (big, big), interpolation=cv2.INTER_CUBIC)
        up = cv2.copyMakeBorder(up, p, p, p, p, cv2.BORDER_CONSTANT, value=128)
        rgb = cv2.cvtColor(up, cv2.COLOR_GRAY2RGB)
        if landmarker is not None:
            found = mesh_boxes(rgb, landmarker)
            roll = 0.0
        else:
            faces = detector.detect(rgb)
            found, roll = [f.box for f in faces], (faces[0].roll if faces else 0.0)
        if not found:
            continue
        x1, y1, x2, y2 = ((v - p) / upscale for v in found[0])
        box = np.sqrt((x2 - x1) * (y2 - y1))
        rows.append((side / box, (side / 2 - (x1 + x2) / 2) / box, (side / 2 - (y1 + y2) / 2) / box, roll))
    arr = np.array(rows)
    q = lambda col: {k: round(float(v), 4) for k, v in zip(("p25", "median", "p75"), np.percentile(arr[:, col], [25, 50, 75]))}  # noqa: E731
    return {
        "images": int(len(images)),
        "detected": int(len(arr)),
        "detection_rate": round(len(arr) / max(1, len(images)), 4),
        "frame_over_box": q(0),
        "frame_centre_minus_box_centre_x": q(1),
        "frame_centre_minus_box_centre_y": q(2),
        "roll_deg": q(3),
        "roll_abs_median_deg": round(float(np.median(np.abs(arr[:, 3]))), 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="fer2013.csv(.gz)")
    p.add_argument("--n", type=int, default=2000, help="training faces to measure")
    p.add_argument("--mesh", action="store_true", help="measure against the Face Landmarker's mesh box instead of MTCNN's")
    args = p.parse_args(argv)
    ds = read_fer2013_csv(args.data)
    idx = np.flatnonzero(ds.splits == SPLITS.index("Training"))[: args.n]
    if args.mesh:
        from mediapipe.tasks.python.core.base_options import BaseOptions
        from mediapipe.tasks.python.vision import FaceLandmarker, FaceLandmarkerOptions

        from ..landmarks import read_task_file

        options = FaceLandmarkerOptions(base_options=BaseOptions(model_asset_buffer=read_task_file()), num_faces=1)
        with FaceLandmarker.create_from_options(options) as landmarker:
            print(json.dumps(measure(ds.images[idx], None, landmarker=landmarker), indent=2))
        return 0
    # Keep every face MTCNN is fairly sure of; the crop rule is then tuned for real detections.
    detector = FaceDetector(FaceConfig(min_prob=0.9))
    print(json.dumps(measure(ds.images[idx], detector), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
