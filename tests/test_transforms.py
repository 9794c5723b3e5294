"""transforms.py: the geometry that moves a crop and its landmarks together, as the mesh itself sees it."""
from __future__ import annotations

import math

import numpy as np
import torch

from fusion_fer.landmarks import mirror
from fusion_fer.transforms import warp_images, warp_points


def _theta(scale: float, angle_deg: float, tx: float, ty: float, flip: bool) -> torch.Tensor:
    a = math.radians(angle_deg)
    sx = -1.0 if flip else 1.0
    c, s = math.cos(a) / scale, math.sin(a) / scale
    return torch.tensor([[[c * sx, -s, tx], [s * sx, c, ty]]], dtype=torch.float32)


def _warp(crop_rgb: np.ndarray, theta: torch.Tensor) -> np.ndarray:
    x = torch.from_numpy(crop_rgb).permute(2, 0, 1)[None].float()
    return warp_images(x, theta)[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()


def test_augmentation_moves_landmarks_with_the_image(mesh, detector, hopper_rgb):
    """Mesh of the augmented image == augmented mesh of the original, flip included.

    Zoom, rotation by 15 degrees, shift and flip: mean error ~0.01 crop widths; leaving the
    points where they were would be off by ~0.1-0.3.
    """
    face = detector.detect(hopper_rgb)[0]
    crop = detector.crop(hopper_rgb, face, size=96)
    pts = torch.from_numpy(mesh(crop).points)[None]
    for scale, angle, tx, ty, flip in [(1.1, 15, 0.1, -0.05, False), (0.9, -12, -0.08, 0.06, True), (1.0, 0, 0, 0, True)]:
        theta = _theta(scale, angle, tx, ty, flip)
        want = warp_points(pts, theta, torch.tensor([flip]))[0].numpy()
        got = mesh(_warp(crop, theta)).points
        err = np.linalg.norm(got[:, :2] - want[:, :2], axis=1).mean()
        still = np.linalg.norm(got[:, :2] - pts[0, :, :2].numpy(), axis=1).mean()
        assert err < 0.02, (scale, angle, flip, err)
        assert still > 3 * err


def test_flip_in_warp_points_is_the_landmark_mirror(mesh, hopper_crop):
    pts = mesh(hopper_crop).points
    flipped = warp_points(torch.from_numpy(pts)[None], _theta(1, 0, 0, 0, True), torch.tensor([True]))[0].numpy()
    assert np.allclose(flipped, mirror(pts, center_x=0.5), atol=1e-5)


def test_zoom_moves_the_landmarks_with_the_pixels():
    """A test-time framing: a bright dot drawn at a landmark is still under that landmark after the zoom."""
    from fusion_fer.transforms import zoom_crops, zoom_points

    crops = np.full((1, 48, 48), 40, np.uint8)
    crops[0, 14:17, 14:17] = 255  # a dot centred on pixel (15, 15): crop units (15.5 / 48)
    points = np.zeros((1, 468, 3), np.float32)
    points[0, :, :2] = 0.5
    points[0, 7, :2] = 15.5 / 48
    for zoom in (1.0, 1.1, 0.9):
        c, p = zoom_crops(crops, zoom), zoom_points(points, zoom)
        assert c.shape == crops.shape and c.dtype == np.uint8
        x, y = p[0, 7, :2] * 48 - 0.5
        assert abs(x - (15 - (24 - 15.5) * (zoom - 1))) < 1e-3  # moved away from the centre by the zoom
        assert c[0, int(round(y)), int(round(x))] > 150  # the dot is where the landmark went
        assert np.allclose(p[0, 0, :2], 0.5)  # the centre stays


def test_soften_blurs_what_the_network_sees_and_zero_leaves_it_alone():
    from fusion_fer.transforms import soften

    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (3, 48, 48)).astype(np.uint8)
    assert soften(crops, 0.0) is crops
    soft = soften(crops, 1.0)
    edges = lambda x: np.abs(np.diff(x.astype(float), axis=-1)).mean()  # noqa: E731
    assert soft.shape == crops.shape and soft.dtype == np.uint8
    assert edges(soft) < 0.5 * edges(crops) and abs(soft.mean() - crops.mean()) < 2
