"""The Face Landmarker's IMAGE mode against its VIDEO mode on a live track's face crops.

    python benchmarks/bench_mesh_modes.py [--frames 120]

The webcam and video follow each face with their own tracker and hand the mesh one 48 px crop per
track and frame. VIDEO mode would need one landmarker per track and skips its face detector while it
tracks. This prints, for each mode on the same drifting crops (Grace Hopper's face moving and
breathing), the time per crop (median, p90), how many crops got a mesh, and the mean frame-to-frame
change of the points (crop units): the jitter the probability smoothing has to absorb.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fusion_fer.faces import FaceDetector, crop_face, to_gray  # noqa: E402
from fusion_fer.imageio import read_rgb  # noqa: E402
from fusion_fer.landmarks import MeshConfig, read_task_file  # noqa: E402
from fusion_fer.samples import grace_hopper  # noqa: E402


def track_crops(n: int) -> list[np.ndarray]:
    """The mesh's inputs for n frames of a face drifting by a few pixels and changing size by 3 %."""
    rgb, _ = read_rgb(grace_hopper())
    face = FaceDetector().detect(rgb)[0]
    cfg = MeshConfig()
    size, pad = cfg.input_size, int(round(cfg.pad * cfg.input_size))
    out = []
    for k in range(n):
        dx, s = 3 * np.sin(k / 7), 1 + 0.03 * np.sin(k / 11)
        x1, y1, x2, y2 = face.box
        cx, cy, w, h = (x1 + x2) / 2 + dx, (y1 + y2) / 2, (x2 - x1) * s, (y2 - y1) * s
        crop = to_gray(crop_face(rgb, replace(face, box=(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)), 48))
        img = cv2.resize(cv2.cvtColor(crop, cv2.COLOR_GRAY2RGB), (size, size), interpolation=cv2.INTER_CUBIC)
        out.append(np.ascontiguousarray(cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))))
    return out


def main() -> None:
    import mediapipe as mp
    from mediapipe.tasks.python.core.base_options import BaseOptions
    from mediapipe.tasks.python.vision import FaceLandmarker, FaceLandmarkerOptions
    from mediapipe.tasks.python.vision.core.vision_task_running_mode import VisionTaskRunningMode as Mode

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=120)
    args = p.parse_args()
    frames = track_crops(args.frames)
    data, conf = read_task_file(), MeshConfig().min_detection_confidence
    for mode in (Mode.IMAGE, Mode.VIDEO, Mode.IMAGE):  # IMAGE twice: the machine's drift shows
        options = FaceLandmarkerOptions(base_options=BaseOptions(model_asset_buffer=data), running_mode=mode, num_faces=1,
                                        min_face_detection_confidence=conf, min_face_presence_confidence=conf,
                                        output_face_blendshapes=True)
        times, points = [], []
        with FaceLandmarker.create_from_options(options) as landmarker:
            for i, img in enumerate(frames * 2):
                image = mp.Image(image_format=mp.ImageFormat.SRGB, data=img)
                t = time.perf_counter()
                res = landmarker.detect(image) if mode == Mode.IMAGE else landmarker.detect_for_video(image, i * 33)
                times.append(time.perf_counter() - t)
                points.append(np.array([(q.x, q.y) for q in res.face_landmarks[0][:468]]) if res.face_landmarks else None)
        ms = np.array(times[20:]) * 1000
        steps = [np.abs(b - a).mean() for a, b in zip(points, points[1:]) if a is not None and b is not None]
        print(f"{mode.name:5s}: {np.median(ms):.2f} ms a crop (p90 {np.percentile(ms, 90):.2f}), mesh on "
              f"{sum(q is not None for q in points)}/{len(points)} crops, frame-to-frame change {np.mean(steps):.5f}")


if __name__ == "__main__":
    main()
