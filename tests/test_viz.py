"""viz.py: labels inside the image whatever the box, clear of other faces on crowded photos; the timeline plot."""
from __future__ import annotations

import numpy as np

from fusion_fer.labels import CLASSES
from fusion_fer.predict import FaceResult
from fusion_fer.viz import COLORS, draw_faces, label_layout, label_rect, plot_timeline


def _face(box, label="sad", p=0.72) -> FaceResult:
    probs = {c: (1 - p) / 6 for c in CLASSES}
    probs[label] = p
    return FaceResult(box=box, label=label, probs=probs)


def _label_pixels(img: np.ndarray, label: str) -> np.ndarray:
    """(N, 2) x, y of pixels in the label's colour (its background)."""
    ys, xs = np.nonzero(np.all(img == np.array(COLORS[label], np.uint8), axis=2))
    return np.stack([xs, ys], 1)


def test_labels_stay_inside_the_image_at_every_edge():
    h, w = 400, 600
    for box in [(-80, 150, 60, 300), (500, 120, 680, 280), (200, -60, 330, 90), (250, 330, 380, 470), (-50, -50, 700, 480)]:
        img = draw_faces(np.full((h, w, 3), 128, np.uint8), [_face(box)])
        x, y, lw, lh = label_rect(tuple(int(v) for v in box), (110, 24), (w, h))
        assert 0 <= x and x + lw <= w and 0 <= y and y + lh <= h, box
        pts = _label_pixels(img, "sad")
        assert len(pts) > 300, box  # the label's background is drawn, so its text is on the image too
    # the face at the left edge: its label starts at the image's left edge, not off it ("sad 72%", not "72%")
    img = draw_faces(np.full((h, w, 3), 128, np.uint8), [_face((-80, 150, 60, 300))])
    pts = _label_pixels(img, "sad")
    assert pts[:, 0].min() == 0 and pts[:, 0].max() > 60


def test_labels_do_not_cover_other_faces_on_a_crowded_photo():
    # a row of faces with a second row right above: the lower row's labels may not go above their boxes
    top = [(40 + 110 * k, 40, 130 + 110 * k, 150) for k in range(5)]
    bottom = [(40 + 110 * k, 160, 130 + 110 * k, 270) for k in range(5)]
    boxes = [tuple(int(v) for v in b) for b in top + bottom]
    placed = []
    for i, b in enumerate(boxes):
        x, y, lw, lh = label_rect(b, (80, 18), (600, 400), others=[o for k, o in enumerate(boxes) if k != i] + placed)
        rect = (x, y, x + lw, y + lh)
        for k, o in enumerate(boxes):
            if k != i:
                assert min(rect[2], o[2]) <= max(rect[0], o[0]) or min(rect[3], o[3]) <= max(rect[1], o[1]), (i, k)
        placed.append(rect)
    # and a face at the top edge puts its label below itself rather than over its own forehead
    x, y, lw, lh = label_rect((100, 0, 200, 120), (80, 18), (600, 400))
    assert y >= 120


def test_numbered_labels_on_a_group_selfie_cover_no_other_label_or_face():
    """The boxes of a real group selfie (600x604, six faces: one cut by the right edge filling a third of the
    frame, two more cut by the edges): no label covers another label (its number) or another face."""
    boxes = [(473, 264, 719, 592), (353, 113, 484, 288), (537, 70, 662, 222), (89, 293, 203, 446), (209, 121, 302, 251),
             (-10, 244, 69, 354)]
    faces = [_face(b, "happy", 0.93) for b in boxes]
    texts = [f"#{i} happy 93%" for i in range(1, 7)]
    drawn, rects = label_layout(faces, texts, (600, 604))

    def apart(a, b):
        return min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1])

    labels = [(x, y, x + w, y + h) for x, y, w, h in rects]
    for i, r in enumerate(labels):
        assert 0 <= r[0] and r[2] <= 600 and 0 <= r[1] and r[3] <= 604
        assert all(apart(r, o) for k, o in enumerate(labels) if k != i), (i, labels)
        assert all(apart(r, o) for k, o in enumerate(drawn) if k != i), (i, r)


def test_timeline_plot_is_written(tmp_path):
    from fusion_fer.video import TrackSummary

    t = np.linspace(0, 2, 20)
    probs = np.tile(np.eye(len(CLASSES))[3], (20, 1)).astype(np.float32)
    track = TrackSummary(1, 0.0, 2.0, 20, {c: float(c == "happy") for c in CLASSES}, t, probs)
    plot_timeline([track], CLASSES, tmp_path / "t.png", title="clip")
    plot_timeline([], CLASSES, tmp_path / "empty.png")  # no face at all: a plot that says so
    for name in ("t.png", "empty.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a probability of exactly 1 is drawn inside the plot, not hidden under its top border
    from PIL import Image

    img = np.asarray(Image.open(tmp_path / "t.png").convert("RGB")).astype(int)
    happy = np.abs(img - np.array(COLORS["happy"])).sum(-1) < 40
    assert happy.sum() > 200, happy.sum()
