"""faces.py: MTCNN finds every real face, none in a blank image, and crops them like FER2013."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from fusion_fer.faces import FaceConfig

from .conftest import SHARED_DATA


def test_finds_the_face_in_a_real_photo(detector, hopper_rgb):
    faces = detector.detect(hopper_rgb)
    assert len(faces) == 1
    f = faces[0]
    x1, y1, x2, y2 = f.box
    assert f.prob > 0.99
    # Grace Hopper's face sits in the upper middle of the portrait and is ~180 px wide.
    assert 120 < x2 - x1 < 260 and 0.3 < (x1 + x2) / 2 / hopper_rgb.shape[1] < 0.7
    # The keypoints (eyes, nose, mouth corners) lie inside the box, eyes above the mouth.
    kp = f.keypoints
    assert np.all((kp[:, 0] > x1) & (kp[:, 0] < x2) & (kp[:, 1] > y1) & (kp[:, 1] < y2))
    assert kp[0, 1] < kp[3, 1] and kp[1, 1] < kp[4, 1]


def test_two_photos_side_by_side_give_two_faces_largest_first(detector, hopper_rgb, astronaut_rgb):
    small = cv2.resize(astronaut_rgb, (384, 384), interpolation=cv2.INTER_AREA)
    canvas = np.full((600, 512 + 384, 3), 255, np.uint8)
    canvas[:, :512] = hopper_rgb
    canvas[100:484, 512:] = small
    faces = detector.detect(canvas)
    assert len(faces) == 2
    assert faces[0].size > faces[1].size
    centres = sorted((f.box[0] + f.box[2]) / 2 for f in faces)
    assert centres[0] < 512 < centres[1]  # one face in each photo


def test_blank_image_has_no_face(detector):
    assert detector.detect(np.full((480, 640, 3), 200, np.uint8)) == []
    assert detector.detect(np.zeros((8, 8), np.uint8)) == []  # smaller than any face


def test_min_face_size_follows_the_image(detector):
    assert detector.min_face_size(1080, 1920) > detector.min_face_size(480, 640) > detector.min_face_size(100, 100)
    assert detector.min_face_size(50, 50) == FaceConfig().min_face_px


def test_detection_on_a_large_photo_matches_the_original(detector, hopper_rgb):
    big = cv2.resize(hopper_rgb, (2048, 2400), interpolation=cv2.INTER_CUBIC)
    a, b = detector.detect(hopper_rgb)[0], detector.detect(big)[0]
    assert np.allclose(np.array(b.box) / 4.0, a.box, atol=6)  # boxes scaled back to full resolution


def test_crop_reproduces_fer2013_framing(detector, hopper_rgb, hopper_crop):
    """MTCNN on our crop, measured like `fusion_fer.research.calibrate`, gives the FER2013 framing back."""
    from fusion_fer.research.calibrate import measure

    assert hopper_crop.shape == (48, 48, 3) and hopper_crop.dtype == np.uint8
    stats = measure(cv2.cvtColor(hopper_crop, cv2.COLOR_RGB2GRAY)[None], detector)
    assert stats["detected"] == 1
    assert abs(stats["frame_over_box"]["median"] - FaceConfig().crop_scale) < 0.12


def test_aligned_crop_levels_the_eyes(detector, hopper_rgb):
    face = detector.detect(hopper_rgb)[0]
    h, w = hopper_rgb.shape[:2]
    rot = cv2.warpAffine(hopper_rgb, cv2.getRotationMatrix2D((w / 2, h / 2), 20, 1.0), (w, h),
                         borderMode=cv2.BORDER_REPLICATE)
    tilted = detector.detect(rot)[0]
    assert abs(tilted.roll - face.roll) > 12  # the photo really is tilted
    crop = detector.crop(rot, tilted, size=96, align=True)
    again = detector.detect(cv2.copyMakeBorder(crop, 48, 48, 48, 48, cv2.BORDER_REPLICATE))[0]
    assert abs(again.roll - face.roll) < 5


def test_group_photos_recall_with_faces_cut_by_the_frame(detector):
    """Assembled group photos (crowds, a face cut by each edge, a close-up filling 80 % of the frame,
    a selfie with a cut foreground face): recall >= 0.9 on faces of >= 40 px, <= 1 false positive per
    10 photos. The edge padding was chosen on seeds 0-5; these are seeds 6-17, held out: 0.956 (217/227)
    and 4 false positives in 48 photos with it, 0.749 and the same 4 without (measured)."""
    from fusion_fer.stream import box_iou

    from .helpers import group_photo

    found = total = false = photos = 0
    per_kind = {}
    for kind in ("crowd", "edges", "closeup", "selfie"):
        hit = n = 0
        for seed in range(6, 18):  # not the seeds the padding was chosen on
            rgb, truth = group_photo(kind, seed)
            h, w = rgb.shape[:2]
            boxes = [(max(0.0, f.box[0]), max(0.0, f.box[1]), min(w, f.box[2]), min(h, f.box[3])) for f in detector.detect(rgb)]
            used: set[int] = set()
            for t in truth:
                if min(t[2] - t[0], t[3] - t[1]) < 40:
                    continue
                n += 1
                match = [i for i, b in enumerate(boxes) if i not in used and box_iou(t, b) >= 0.4]
                if match:
                    used.add(match[0])
                    hit += 1
            false += len(boxes) - len(used)
            photos += 1
        per_kind[kind] = (hit, n)
        found, total = found + hit, total + n
    print(f"group photos: recall {found}/{total} = {found / total:.3f}, {false} false positives in {photos} photos; {per_kind}")
    assert found / total >= 0.9, per_kind
    assert false <= photos / 10
    assert per_kind["closeup"][0] == per_kind["closeup"][1]  # the face filling the frame is always found


def test_a_group_selfie_finds_six_of_its_seven_faces(detector):
    """The selfie-taker's face in front (35-50 % of the frame's height, 40 % of it beyond the edge), a face
    cut by a corner, one half hidden behind another head, and three more: at least 6 of the 7 on every photo,
    and no false positive. Measured on seeds 0-11: 80/84 found (the misses are all the half-hidden face),
    no false positive; without the edge padding 53/84."""
    from fusion_fer.stream import box_iou

    from .helpers import group_photo

    found = []
    for seed in range(12):
        rgb, truth = group_photo("selfie_group", seed)
        assert len(truth) == 7
        h, w = rgb.shape[:2]
        boxes = [(max(0.0, f.box[0]), max(0.0, f.box[1]), min(w, f.box[2]), min(h, f.box[3])) for f in detector.detect(rgb)]
        hits = [max((box_iou(t, b) for b in boxes), default=0.0) >= 0.4 for t in truth]
        big = max(range(7), key=lambda k: (truth[k][3] - truth[k][1]))
        assert hits[big], f"seed {seed}: the selfie-taker's own face was missed"
        assert sum(hits) >= 6 and len(boxes) <= 7, (seed, hits, len(boxes))
        found.append(sum(hits))
    print(f"group selfies: {sum(found)}/{7 * len(found)} faces found")


def test_crop_shrinks_only_the_face_region_with_the_same_pixels(hopper_rgb):
    """Big faces are box-filtered before the 48 px crop; only their neighbourhood is shrunk now, and the
    crop must equal the one from shrinking the whole photo (inside, cut by the frame, or outside it)."""
    import cv2
    from PIL import Image

    from fusion_fer.faces import Face, FaceConfig, crop_face, crop_transform

    cfg = FaceConfig()

    def whole_photo_crop(rgb, face, size=48):
        m = crop_transform(face, size, cfg)
        k = int(face.size * cfg.crop_scale // (2 * size))
        src = rgb
        if k >= 2:
            src, m = np.asarray(Image.fromarray(rgb).reduce(k)), m.copy()
            m[:, :2] *= k
        return cv2.warpAffine(src, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    rng = np.random.default_rng(0)
    for img in (hopper_rgb, cv2.resize(hopper_rgb, (1999, 2401))):
        h, w = img.shape[:2]
        for _ in range(60):
            s = rng.uniform(100, 1500)
            x, y = rng.uniform(-s, w), rng.uniform(-s, h)
            face = Face((x, y, x + s, y + 1.2 * s), 1.0, np.zeros((5, 2), np.float32))
            assert np.array_equal(crop_face(img, face, 48, cfg), whole_photo_crop(img, face))


SELFIE = SHARED_DATA / "group_photos" / "selfie_seven.jpg"
# The seven faces of ../shared's group selfie, marked by eye (600x604; boxes reach beyond the frame where it cuts them):
# the selfie-taker at the right edge, a man cut by the right edge, a woman cut by the bottom-left corner, four more.
SELFIE_FACES = {"selfie-taker": (470, 262, 720, 600), "glasses, right edge": (525, 62, 665, 228),
                "bottom-left corner": (-60, 395, 60, 570), "left edge": (-12, 244, 68, 354), "centre": (353, 113, 484, 288),
                "beard": (209, 121, 302, 251), "front left": (89, 293, 203, 446)}


@pytest.mark.skipif(not SELFIE.exists(), reason=f"{SELFIE} not found (../shared/data)")
def test_a_real_group_selfie_finds_the_selfie_taker_and_six_of_seven_faces(detector):
    from fusion_fer.imageio import read_rgb
    from fusion_fer.stream import box_iou

    rgb, _ = read_rgb(SELFIE)
    h, w = rgb.shape[:2]
    faces = detector.detect(rgb)
    hits = {name: [f for f in faces if box_iou(truth, f.box) >= 0.4] for name, truth in SELFIE_FACES.items()}
    print({name: len(v) for name, v in hits.items()})
    assert hits["selfie-taker"], "the selfie-taker's own face was missed"
    assert sum(bool(v) for v in hits.values()) >= 6 and len(faces) <= 7  # no face found twice, none made up
    assert hits["selfie-taker"][0].cut_by(w, h) and not hits["centre"][0].cut_by(w, h)
    without = detector.detect(rgb, edge_pass=False)  # what the edge pass adds: the faces the frame cuts
    assert len(without) < len(faces) and not any(box_iou(SELFIE_FACES["selfie-taker"], f.box) >= 0.4 for f in without)


def test_a_large_face_cut_by_the_edge_is_found_and_said_to_be_cut(detector, astronaut_rgb, hopper_rgb):
    """The project's own case: a portrait enlarged so the face fills 60 % of the frame's height, with 45 % of
    it beyond the right edge (a selfie-taker's face), which the first pass alone misses; a whole face beside it
    stays whole."""
    import cv2

    from fusion_fer.stream import box_iou

    x1, y1, x2, y2 = detector.detect(astronaut_rgb)[0].box
    h, w = 600, 800
    s = 0.6 * h / (y2 - y1)
    big = cv2.resize(astronaut_rgb, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
    canvas = np.full((h, w, 3), 90, np.uint8)
    ox, oy = int(w - (x1 * s + 0.55 * (x2 - x1) * s)), int(0.3 * h - y1 * s)
    ys, xs = max(0, oy), max(0, ox)
    part = big[ys - oy:ys - oy + h - ys, xs - ox:xs - ox + w - xs]
    canvas[ys:ys + part.shape[0], xs:xs + part.shape[1]] = part
    small = cv2.resize(hopper_rgb, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)[:500]
    canvas[60:60 + small.shape[0], 20:20 + small.shape[1]] = small
    truth = (ox + x1 * s, oy + y1 * s, ox + x2 * s, oy + y2 * s)
    assert (truth[2] - w) / (truth[2] - truth[0]) > 0.4
    assert not [f for f in detector.detect(canvas, edge_pass=False) if box_iou(truth, f.box) >= 0.4]
    faces = detector.detect(canvas)
    cut = [f for f in faces if box_iou(truth, f.box) >= 0.4]
    assert len(cut) == 1 and cut[0].cut_by(w, h)
    whole = [f for f in faces if f is not cut[0]]
    assert len(whole) == 1 and not whole[0].cut_by(w, h)


def test_a_crops_inverse_takes_its_pixels_back_to_the_image(hopper_rgb):
    """`FaceCrops.to_image` undoes the crop, rotation included: a dot drawn on the face, found in the crop,
    maps back to where it was drawn, and depth scales with the crop's size in the image."""
    from fusion_fer.faces import FaceDetector, crop_face, to_gray

    det = FaceDetector(FaceConfig(align=True))
    h, w = hopper_rgb.shape[:2]
    rot = cv2.warpAffine(hopper_rgb, cv2.getRotationMatrix2D((w / 2, h / 2), 20, 1.0), (w, h), borderMode=cv2.BORDER_REPLICATE)
    found = det.find(rot)
    face = found.faces[0]
    assert abs(face.roll) > 12 and found.crops.shape == (1, 48, 48) and found.scale == 1.0
    side = face.size * det.config.crop_scale  # the crop's side in image pixels
    x1, y1, x2, y2 = face.box
    dot = np.array([x1 + 0.3 * (x2 - x1), y1 + 0.6 * (y2 - y1)])  # off-centre, so a wrong rotation shows
    marked = rot.copy()
    cv2.circle(marked, tuple(int(round(v)) for v in dot), max(2, int(side / 40)), (255, 255, 255), -1)
    diff = to_gray(crop_face(marked, face, 48, det.config)).astype(int) - found.crops[0]
    cy, cx = np.unravel_index(np.argmax(diff), diff.shape)
    back = found.to_image[0] @ np.array([(cx + 0.5) / 48, (cy + 0.5) / 48, 0.1, 1.0])
    assert np.hypot(*(back[:2] - dot)) < 1.5 * side / 48  # within a crop pixel and a half
    assert abs(back[2] - 0.1 * side) < 1e-6 * side


def test_an_input_that_is_a_face_crop_is_its_own_frame():
    from fusion_fer.faces import whole_image_crop

    img = np.zeros((40, 60, 3), np.uint8)
    img[:, 30:] = 200
    found = whole_image_crop(img)
    assert found.crops.shape == (1, 48, 48) and found.crops[0, :, :20].max() == 0 and found.crops[0, :, 28:].min() > 150
    assert np.allclose(found.to_image[0] @ [1.0, 1.0, 0.5, 1.0], [60, 40, 30, 1])
    assert not found.cut[0] and found.faces[0].box == (0.0, 0.0, 60.0, 40.0)
