"""landmarks.py: 468 points on a real face, normalisation invariances, mirroring, standardisation."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fusion_fer.landmarks import (
    N_POINTS, LandmarkStats, eye_indices, mirror, mirror_index, normalize,
)


def test_mesh_gives_468_points_on_the_face(mesh, hopper_crop):
    pts = mesh(hopper_crop).points
    assert pts is not None and pts.shape == (N_POINTS, 3) and pts.dtype == np.float32
    # Crop units: the face fills the crop, so the points span most of 0..1.
    assert pts[:, :2].min() > -0.1 and pts[:, :2].max() < 1.1
    assert np.ptp(pts[:, 0]) > 0.6 and np.ptp(pts[:, 1]) > 0.6
    left, right = eye_indices()
    assert pts[left, 0].mean() < pts[right, 0].mean()  # the image-left eye set is on the left
    assert np.isfinite(pts).all()


def test_mesh_says_not_found_on_a_blank_crop(mesh):
    assert mesh(np.full((48, 48), 128, np.uint8)) is None


def test_mirror_of_mesh_matches_mesh_of_flipped_face(mesh, hopper_crop):
    """mirror(mesh(crop)) ~ mesh(flip(crop)) on a real face (one the index was not derived from).

    Measured on Grace Hopper's 48 px crop: mean error 0.0068 crop widths (0.33 px), max 0.023;
    negating x without swapping the points gives 0.37.
    """
    a = mesh(hopper_crop).points
    b = mesh(np.ascontiguousarray(hopper_crop[:, ::-1])).points
    err = np.linalg.norm(mirror(a, center_x=0.5)[:, :2] - b[:, :2], axis=1)
    naive = a.copy()
    naive[:, 0] = 1.0 - naive[:, 0]
    naive_err = np.linalg.norm(naive[:, :2] - b[:, :2], axis=1)
    print(f"mirror error: mean {err.mean():.4f}, max {err.max():.4f} crop widths; without the swap {naive_err.mean():.4f}")
    assert err.mean() < 0.015 and err.max() < 0.05
    assert naive_err.mean() > 10 * err.mean()


def test_mirror_index_is_a_left_right_swap():
    from fusion_fer.research.mirror import mirror_edge_agreement  # how the asset was checked when it was derived

    idx = mirror_index()
    assert np.array_equal(idx[idx], np.arange(N_POINTS))  # mirroring twice is the identity
    left, right = eye_indices()
    assert np.array_equal(np.sort(idx[left]), right)
    # The midline (nose, lips' centre, chin) stays put: a few dozen fixed points, not hundreds.
    assert 10 < np.sum(idx == np.arange(N_POINTS)) < 40
    # The mesh's own triangulation maps onto itself (it is not perfectly symmetric: 99.5 %).
    assert mirror_edge_agreement(idx) > 0.99


def test_mirror_twice_is_identity_and_flips_x(mesh, hopper_crop):
    pts = normalize(mesh(hopper_crop).points)
    assert np.allclose(mirror(mirror(pts)), pts)
    assert np.allclose(mirror(pts)[:, 0].mean(), -pts[:, 0].mean(), atol=1e-5)


def test_normalize_removes_position_scale_and_roll(mesh, hopper_crop):
    pts = mesh(hopper_crop).points
    base = normalize(pts)
    a = np.radians(25)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], dtype=np.float32)
    moved = pts.copy()
    moved[:, :2] = pts[:, :2] @ rot.T * 3.0 + np.array([5.0, -2.0], np.float32)
    moved[:, 2] *= 3.0
    assert np.allclose(normalize(moved), base, atol=1e-4)
    assert np.allclose(base.mean(axis=0), 0, atol=1e-5)
    assert np.isclose(np.sqrt((base[:, :2] ** 2).sum(1).mean()), 1.0)
    left, right = eye_indices()
    assert abs(base[right, 1].mean() - base[left, 1].mean()) < 1e-4  # eyes level
    # A batch gives the same as one at a time.
    assert np.allclose(normalize(np.stack([pts, moved])), np.stack([base, base]), atol=1e-4)


def test_standardisation_fits_the_training_set_and_round_trips():
    rng = np.random.default_rng(0)
    pts = rng.normal(2.0, 3.0, size=(200, N_POINTS, 3)).astype(np.float32)
    found = np.ones(200, bool)
    found[:20] = False
    pts[:20] = 1000.0  # rows without landmarks must not leak into the statistics
    stats = LandmarkStats.fit(pts, found)
    z = stats(pts[20:])
    assert z.shape == (180, N_POINTS * 3)
    assert np.allclose(z.mean(0), 0, atol=1e-4) and np.allclose(z.std(0), 1, atol=1e-3)
    again = LandmarkStats.from_dict(stats.to_dict())
    assert np.allclose(again(pts[20:]), z)
    with pytest.raises(ValueError, match="no face has landmarks"):
        LandmarkStats.fit(pts, np.zeros(200, bool))


def test_the_shipped_face_landmarker_is_the_pinned_file_and_gives_478_points_and_52_named_blendshapes(hopper_rgb):
    """The bundle inside the package matches its sha256; on a whole sample photo MediaPipe's task gives the
    478-point mesh (468 + 10 iris points) and 52 blendshapes, named as `blendshape_names` says."""
    import hashlib

    import mediapipe as mp
    from mediapipe.tasks.python.core.base_options import BaseOptions
    from mediapipe.tasks.python.vision import FaceLandmarker, FaceLandmarkerOptions

    from fusion_fer.landmarks import TASK_FILE, TASK_SHA256, blendshape_names, read_task_file

    data = read_task_file()
    assert hashlib.sha256(TASK_FILE.read_bytes()).hexdigest() == TASK_SHA256 == hashlib.sha256(data).hexdigest()
    assert (TASK_FILE.parent / "NOTICE").read_text().count(TASK_SHA256) == 1  # its licence and source travel with it
    options = FaceLandmarkerOptions(base_options=BaseOptions(model_asset_buffer=data), output_face_blendshapes=True)
    with FaceLandmarker.create_from_options(options) as landmarker:
        res = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(hopper_rgb)))
    assert len(res.face_landmarks) == 1 and len(res.face_landmarks[0]) == 478
    names = [c.category_name for c in sorted(res.face_blendshapes[0], key=lambda c: c.index)]
    assert len(names) == 52 and tuple(names) == blendshape_names()
    assert "browDownLeft" in names and "jawOpen" in names and "noseSneerRight" in names


def test_the_mesh_gives_blendshapes_that_move_with_the_face(mesh, hopper_crop):
    """52 coefficients in 0..1 per face, the strongest well above zero; the portrait's open eyes do not read as a blink."""
    from fusion_fer.landmarks import N_BLENDSHAPES, blendshape_names

    res = mesh(hopper_crop)
    shapes = res.blendshapes
    assert shapes.shape == (N_BLENDSHAPES,) and shapes.dtype == np.float32
    assert (shapes >= 0).all() and (shapes <= 1).all() and shapes.max() > 0.1
    # the eyes are open and looking ahead: the blink coefficients stay low on this portrait
    names = blendshape_names()
    assert shapes[names.index("eyeBlinkLeft")] < 0.5 and shapes[names.index("eyeBlinkRight")] < 0.5


def test_a_wrong_or_missing_landmarker_file_is_a_clear_error(tmp_path):
    from fusion_fer.landmarks import TASK_SHA256, FaceMesh, LandmarkerFileError

    bad = tmp_path / "face_landmarker.task"
    bad.write_bytes(b"not the model")
    with pytest.raises(LandmarkerFileError) as err:
        FaceMesh(model_file=bad)
    msg = str(err.value)
    assert str(bad) in msg and TASK_SHA256 in msg and "13 bytes" in msg and "face_landmarker.task" in msg
    with pytest.raises(LandmarkerFileError, match="cannot be read"):
        FaceMesh(model_file=tmp_path / "missing.task")


def test_a_face_mesh_left_in_a_reference_cycle_is_collected_without_hanging_the_process():
    """A predictor dropped inside a reference cycle is freed by the garbage collector, not by reference counts.
    MediaPipe's own finaliser then waited forever for a worker thread the collection had already stopped (a
    pytest run hung at its end that way); the mesh now closes its landmarker itself."""
    from .conftest import ROOT

    code = ("import gc\nfrom fusion_fer.landmarks import FaceMesh\nfor i in range(3):\n"
            "    m = FaceMesh(); m.cycle = m; del m\n    gc.collect()\nprint('collected', flush=True)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "collected" in done.stdout, done.stderr[-2000:]
