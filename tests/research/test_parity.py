"""research/parity.py: the page's square on a photo, the photos the browser test keeps for itself, the report."""
from __future__ import annotations

import numpy as np

from fusion_fer.faces import FaceConfig, crop_face
from fusion_fer.research import parity


def test_the_pages_square_is_the_calibrated_one_around_the_mesh_box():
    fc = FaceConfig()
    box = (100.0, 50.0, 200.0, 170.0)  # 100 x 120: size sqrt(12000)
    size = np.sqrt(100 * 120)
    face = parity.page_square(box, fc)
    x1, y1, x2, y2 = face.box
    assert np.isclose(x2 - x1, size * fc.mesh_crop_scale) and np.isclose(y2 - y1, size * fc.mesh_crop_scale)
    assert np.isclose((x1 + x2) / 2, 150 + fc.mesh_crop_shift_x * size)
    assert np.isclose((y1 + y2) / 2, 110 + fc.mesh_crop_shift_y * size)
    # a variant: a larger square, moved down by 0.02 mesh-box sides
    big = parity.page_square(box, fc, 1.03, 0.02).box
    assert np.isclose(big[2] - big[0], 1.03 * (x2 - x1)) and np.isclose((big[1] + big[3]) / 2, (y1 + y2) / 2 + 0.02 * size)
    # cut with no calibration of its own, the square is exactly what the crop shows: a dot at its centre lands at
    # the crop's centre
    img = np.zeros((300, 300, 3), np.uint8)
    cx, cy = round((x1 + x2) / 2), round((y1 + y2) / 2)
    img[cy - 2:cy + 3, cx - 2:cx + 3] = 255
    plain = FaceConfig(crop_scale=1.0, crop_shift_y=0.0, align=False)
    crop = crop_face(img, face, 48, plain)[..., 0].astype(float)
    ys, xs = np.nonzero(crop > 60)
    assert abs(xs.mean() - 24) <= 1.0 and abs(ys.mean() - 24) <= 1.0  # the crop maps the square's centre to pixel 24


def test_the_browser_tests_photos_are_every_tenth_and_kept_out_of_the_choice():
    rows = [{"file": f"p{i}.jpg"} for i in range(649)]
    kept = parity.checked_rows(rows)
    assert len(kept) == 60 and "p0.jpg" in kept and "p590.jpg" in kept and "p600.jpg" not in kept and "p5.jpg" not in kept


def test_the_report_marks_the_choice_and_the_pages_own_squares(tmp_path):
    row = lambda same: {"other": {"photos": 9, "same_label": same, "page_accuracy": 0.7, "python_accuracy": 0.8},  # noqa: E731
                        "checked": {"photos": 1, "same_label": 1.0, "page_accuracy": 1.0, "python_accuracy": 1.0}}
    names = list(parity.VARIANTS)
    result = {"model": "m", "variants": {n: row(0.8 + 0.01 * k) for k, n in enumerate(names)},
              "chosen": names[-1], "page": names[0], "photos": {}}
    parity.write_report(result, tmp_path)
    md = (tmp_path / "parity.md").read_text()
    assert f"**{names[-1]}**" in md and f"| {names[0]} (the page's config.json) |" in md
    assert "83.0 %" in md and (tmp_path / "parity.png").stat().st_size > 1000


def test_a_folder_without_labels_is_refused(tmp_path, capsys):
    assert parity.main(["--data", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "labels.csv" in capsys.readouterr().err
