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
    "contempt": (140, 86, 75),
}


def draw_faces(rgb: np.ndarray, faces: Sequence[FaceResult], show_landmarks: bool = False,
               labels: Sequence[str] | None = None) -> np.ndarray:
    """Annotates a copy of the image.

    Labels always lie inside the image, whatever the box (a face cut by the frame included), and
    on a crowded photo each goes where it covers no other face and no other label, if there is such
    a place: above its box, below it, or inside its top or bottom edge.

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
    thick, font = _pen(h, w)
    texts = [labels[i] if labels is not None else f"{f.label} {f.confidence:.0%}" for i, f in enumerate(faces)]
    for face, text, (x1, y1, x2, y2), (lx, ly, lw, lh) in zip(faces, texts, *label_layout(faces, texts, (w, h))):
        color = COLORS.get(face.label, (255, 255, 255))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thick + 1)
        if show_landmarks and face.landmarks is not None:
            r = max(1, thick - 1)
            for x, y in face.landmarks[:, :2].astype(int):
                cv2.circle(out, (int(x), int(y)), r, (0, 255, 200), -1, lineType=cv2.LINE_AA)
    # labels last, over every box and mesh: a later face's box never hides an earlier face's number
    for face, text, (lx, ly, lw, lh) in zip(faces, texts, label_layout(faces, texts, (w, h))[1]):
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, thick)
        cv2.rectangle(out, (lx, ly), (lx + lw, ly + lh), COLORS.get(face.label, (255, 255, 255)), -1)
        cv2.putText(out, text, (lx + 2, ly + th + (base // 4)), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), thick, cv2.LINE_AA)
    return out


def _pen(h: int, w: int) -> tuple[int, float]:
    """Line thickness and font scale for an image of this size."""
    return max(1, round(min(h, w) / 300)), max(0.4, min(h, w) / 900)


def label_layout(faces: Sequence[FaceResult], texts: Sequence[str], image: tuple[int, int]):
    """Every face's box and its label's (x, y, width, height), in order, as `draw_faces` draws them: each
    label goes where it covers no other face and no label placed before it, if there is such a place."""
    w, h = image
    thick, font = _pen(h, w)
    boxes = [tuple(int(round(v)) for v in f.box) for f in faces]
    placed: list[tuple[int, int, int, int]] = []
    rects = []
    for i, text in enumerate(texts):
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, thick)
        lx, ly, lw, lh = label_rect(boxes[i], (tw + 4, th + base + base // 2), (w, h),
                                    others=[b for k, b in enumerate(boxes) if k != i] + placed)
        placed.append((lx, ly, lx + lw, ly + lh))
        rects.append((lx, ly, lw, lh))
    return boxes, rects


def label_rect(box: tuple[int, int, int, int], size: tuple[int, int], image: tuple[int, int],
               others: Sequence[tuple[int, int, int, int]] = ()) -> tuple[int, int, int, int]:
    """Where a face's label goes: (x, y, width, height), always inside the image.

    Tries above the box, below it, then inside its top and bottom edges, each flush with the box's left
    edge, then its right edge, then centred, and each moved into the image; takes the first that overlaps
    none of `others` (other faces' boxes and labels already placed) and not its own face either, else
    the first clear of `others`, else the one that overlaps them least.
    """
    x1, y1, x2, y2 = box
    lw, lh = min(size[0], image[0]), min(size[1], image[1])
    candidates = [(x, y) for y in (y1 - lh, y2, y1, y2 - lh) for x in (x1, x2 - lw, (x1 + x2 - lw) // 2)]

    def inside(x: int, y: int) -> tuple[int, int]:
        return min(max(0, x), image[0] - lw), min(max(0, y), image[1] - lh)

    def overlap(x: int, y: int, rects) -> int:
        return sum(max(0, min(x + lw, o[2]) - max(x, o[0])) * max(0, min(y + lh, o[3]) - max(y, o[1])) for o in rects)

    spots = [inside(x, y) for x, y in candidates]
    best = min(spots, key=lambda s: (overlap(*s, others), overlap(*s, [box]) > 0, spots.index(s)))
    return best[0], best[1], lw, lh


def draw_message(rgb: np.ndarray, text: str) -> np.ndarray:
    """Writes a short status (e.g. "no face") in the image's top-left corner."""
    out = np.ascontiguousarray(rgb).copy()
    h, w = out.shape[:2]
    font = max(0.5, min(h, w) / 700)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, 2)
    cv2.rectangle(out, (0, 0), (tw + 12, th + base + 12), (0, 0, 0), -1)
    cv2.putText(out, text, (6, th + 6), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def plot_timeline(tracks, classes: Sequence[str], path, max_tracks: int = 6, title: str | None = None) -> None:
    """Saves a PNG: each class's probability over time, one panel per track (the longest `max_tracks`).

    Args:
        tracks: `video.TrackSummary` objects (times (T,), probs (T, C), track id, share).
        classes: class names, in the order of the probability columns.
        path: where to write the PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = sorted(tracks, key=lambda t: -t.frames)[:max_tracks]
    shown.sort(key=lambda t: t.track)
    fig, axes = plt.subplots(max(1, len(shown)), 1, figsize=(10, 1.2 + 2.2 * max(1, len(shown))), sharex=True, squeeze=False)
    for ax, t in zip(axes[:, 0], shown):
        for k, c in enumerate(classes):
            ax.plot(t.times, t.probs[:, k], color=np.array(COLORS.get(c, (0, 0, 0))) / 255, lw=1.6, label=c)
        top = ", ".join(f"{c} {t.share[c]:.0%}" for c in sorted(t.share, key=t.share.get, reverse=True)[:3] if t.share[c] > 0)
        ax.set_title(f"face #{t.track}: {top}", fontsize=10, loc="left")
        ax.set_ylim(-0.04, 1.04), ax.set_ylabel("probability"), ax.grid(alpha=0.3)  # a margin: 0 and 1 stay visible
    if not shown:
        axes[0, 0].text(0.5, 0.5, "no face in any classified frame", ha="center", va="center", transform=axes[0, 0].transAxes)
        axes[0, 0].set_yticks([])
    axes[-1, 0].set_xlabel("time (s)")
    handles, names = axes[0, 0].get_legend_handles_labels()
    top = 1.0 - (0.35 if title else 0) / fig.get_figheight()
    bottom = (0.35 if handles else 0) / fig.get_figheight()  # the legend goes below: a page puts its buttons on the top corners
    if title:
        fig.suptitle(title, y=0.995, va="top", fontsize=11)
    if handles:
        fig.legend(handles, names, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=len(names), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, bottom, 1, top))
    fig.savefig(path, dpi=100)
    plt.close(fig)
