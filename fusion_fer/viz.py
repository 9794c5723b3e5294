"""Drawing: boxes, labels, confidences and landmarks on an image (the app and CLI only format)."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from .predict import FaceResult

# One colour per class (RGB), chosen to be told apart on screen.
COLORS = {
    "angry": (230, 57, 70), "disgust": (106, 153, 78), "fear": (155, 93, 229), "happy": (255, 183, 3),
    "sad": (33, 118, 174), "surprise": (247, 127, 0), "neutral": (160, 160, 160),
}


def draw_faces(rgb: np.ndarray, faces: Sequence[FaceResult], show_landmarks: bool = False,
               labels: Sequence[str] | None = None) -> np.ndarray:
    """Annotates a copy of the image.

    Args:
        rgb: (H, W, 3) uint8 image the faces were found in.
        faces: predictions, in any order.
        show_landmarks: also draw the 468 mesh points.
        labels: optional text per face (default: "label 87%").

    Returns:
        (H, W, 3) uint8 annotated copy.
    """
    out = np.ascontiguousarray(rgb).copy()
    h, w = out.shape[:2]
    thick = max(1, round(min(h, w) / 300))
    font = max(0.4, min(h, w) / 900)
    for i, face in enumerate(faces):
        color = COLORS.get(face.label, (255, 255, 255))
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thick + 1)
        if show_landmarks and face.landmarks is not None:
            r = max(1, thick - 1)
            for x, y in face.landmarks[:, :2].astype(int):
                cv2.circle(out, (int(x), int(y)), r, (0, 255, 200), -1, lineType=cv2.LINE_AA)
        text = labels[i] if labels is not None else f"{face.label} {face.confidence:.0%}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, thick)
        ty = y1 - 4 if y1 - th - base - 4 > 0 else min(h - 1, y2 + th + base + 4)
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw + 4, ty + base // 2), color, -1)
        cv2.putText(out, text, (x1 + 2, ty - base // 2), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), thick, cv2.LINE_AA)
    return out


def draw_message(rgb: np.ndarray, text: str) -> np.ndarray:
    """Writes a short status (e.g. "no face") in the image's top-left corner."""
    out = np.ascontiguousarray(rgb).copy()
    h, w = out.shape[:2]
    font = max(0.5, min(h, w) / 700)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, 2)
    cv2.rectangle(out, (0, 0), (tw + 12, th + base + 12), (0, 0, 0), -1)
    cv2.putText(out, text, (6, th + 6), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 2, cv2.LINE_AA)
    return out
