"""Measures how FER2013 frames a face, relative to an MTCNN box, to calibrate `FaceConfig`'s crop.

    python -m fusion_fer.research.calibrate --data ../shared/data/fer2013/fer2013_reconstructed.csv.gz

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


def measure(images: np.ndarray, detector: FaceDetector, upscale: int = 4, pad: float = 0.5) -> dict:
    """Detects faces in upscaled, padded FER crops.

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
        faces = detector.detect(cv2.cvtColor(up, cv2.COLOR_GRAY2RGB))
        if not faces:
            continue
        f = faces[0]
        x1, y1, x2, y2 = ((v - p) / upscale for v in f.box)
        box = np.sqrt((x2 - x1) * (y2 - y1))
        rows.append((side / box, (side / 2 - (x1 + x2) / 2) / box, (side / 2 - (y1 + y2) / 2) / box, f.roll))
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
    args = p.parse_args(argv)
    ds = read_fer2013_csv(args.data)
    idx = np.flatnonzero(ds.splits == SPLITS.index("Training"))[: args.n]
    # Keep every face MTCNN is fairly sure of; the crop rule is then tuned for real detections.
    detector = FaceDetector(FaceConfig(min_prob=0.9))
    print(json.dumps(measure(ds.images[idx], detector), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
