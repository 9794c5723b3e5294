"""transforms.py: augmentation moves image and landmarks together, as the mesh itself sees it."""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from fusion_fer.landmarks import LandmarkStats, guide_indices, mirror, normalize, subset_mirror
from fusion_fer.transforms import (AugmentConfig, augment_batch, guide_grid, images_to_tensor, random_affine, warp_images,
                                  warp_points)


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
    pts = torch.from_numpy(mesh(crop))[None]
    for scale, angle, tx, ty, flip in [(1.1, 15, 0.1, -0.05, False), (0.9, -12, -0.08, 0.06, True), (1.0, 0, 0, 0, True)]:
        theta = _theta(scale, angle, tx, ty, flip)
        want = warp_points(pts, theta, torch.tensor([flip]))[0].numpy()
        got = mesh(_warp(crop, theta))
        err = np.linalg.norm(got[:, :2] - want[:, :2], axis=1).mean()
        still = np.linalg.norm(got[:, :2] - pts[0, :, :2].numpy(), axis=1).mean()
        assert err < 0.02, (scale, angle, flip, err)
        assert still > 3 * err


def test_flip_in_warp_points_is_the_landmark_mirror(mesh, hopper_crop):
    pts = mesh(hopper_crop)
    flipped = warp_points(torch.from_numpy(pts)[None], _theta(1, 0, 0, 0, True), torch.tensor([True]))[0].numpy()
    assert np.allclose(flipped, mirror(pts, center_x=0.5), atol=1e-5)


def test_photometric_jitter_leaves_landmarks_alone(mesh, hopper_crop):
    grey = cv2.cvtColor(hopper_crop, cv2.COLOR_RGB2GRAY)
    pts = mesh(hopper_crop)
    imgs, points, found = np.stack([grey] * 8), np.stack([pts] * 8), np.ones(8, bool)
    stats = LandmarkStats(np.zeros(1404, np.float32), np.ones(1404, np.float32))
    cfg = AugmentConfig(scale=(1, 1), translate=0, rotate=0, hflip=0, landmark_noise=0, erase_p=1.0)
    x, z, g = augment_batch(imgs, points, found, stats, 48, cfg, torch.Generator().manual_seed(0))
    assert x.shape == (8, 1, 48, 48) and z.shape == (8, 1404) and g is None
    assert np.allclose(z.numpy(), normalize(pts).reshape(1, -1), atol=1e-5)  # geometry untouched
    plain = images_to_tensor(imgs, 48)
    assert not torch.allclose(x, plain)  # but the pixels changed (jitter + erasing)
    missing = np.zeros(8, bool)
    _, z0, _ = augment_batch(imgs, points, missing, stats, 48, cfg, torch.Generator().manual_seed(0))
    assert torch.count_nonzero(z0) == 0  # faces without landmarks get zeros


def test_guide_points_follow_the_pixels_through_augmentation(mesh, hopper_crop):
    """What the guided fusion reads: the augmented image at the moved guide points shows what the
    original showed at the original points (the mirror partner's, for flipped faces)."""
    grey = cv2.cvtColor(hopper_crop, cv2.COLOR_RGB2GRAY)
    pts = mesh(hopper_crop)
    idx = guide_indices()
    imgs, points, found = np.stack([grey] * 8), np.stack([pts] * 8), np.ones(8, bool)
    stats = LandmarkStats(np.zeros(1404, np.float32), np.ones(1404, np.float32))
    cfg = AugmentConfig(brightness=0, contrast=0, erase_p=0, landmark_noise=0, hflip=0.5)
    gen = torch.Generator().manual_seed(3)
    x, _, g = augment_batch(imgs, points, found, stats, 48, cfg, gen, guide_points=idx)
    assert g.shape == (8, len(idx), 2)
    orig = images_to_tensor(imgs, 48)
    g0 = guide_grid(points, idx)

    def read(img, grid):
        return torch.nn.functional.grid_sample(img, grid.unsqueeze(2), align_corners=False)[:, 0, :, 0]

    got, want = read(x, g), read(orig, g0)
    _, flipped = random_affine(8, cfg, torch.Generator().manual_seed(3))  # augment_batch's first draw
    assert 0 < int(flipped.sum()) < 8
    want_m = want[:, subset_mirror(idx)]
    inside = (g.abs() < 0.9).all(-1)  # points the zoom or shift pushed off the crop have nothing to show
    f = flipped[:, None].expand_as(inside)

    def mean_abs(d):
        return float(d.abs()[inside].mean())

    err = mean_abs(torch.where(f, got - want_m, got - want))
    unswapped = float((got - want).abs()[inside & f].mean())  # flipped faces read without the index swap
    stale = mean_abs(read(x, g0) - torch.where(f, want_m, want))  # points left where they were
    print(f"guide-point read error {err:.3f} (standardised grey); unswapped {unswapped:.3f}, unmoved {stale:.3f}")
    assert err < 0.12 and unswapped > 2 * err and stale > 3 * err


def test_robustness_preset_degrades_images_and_is_off_by_default():
    """JPEG loses detail, blur removes edges, low resolution too; the default preset leaves images alone."""
    import torch

    from fusion_fer.transforms import ROBUST, AugmentConfig, degrade, gaussian_blur, jpeg_round_trip

    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 1, 48, 48)  # noise: all high frequencies
    assert torch.equal(degrade(x.clone(), AugmentConfig(), g), x)
    edges = lambda t: (t[..., 1:] - t[..., :-1]).abs().mean()  # noqa: E731
    blurred = gaussian_blur(x, torch.full((8,), 1.0))
    assert edges(blurred) < 0.5 * edges(x) and abs(float(blurred.mean() - x.mean())) < 0.01
    j = jpeg_round_trip(x, torch.full((8,), 30))
    assert 0.02 < float((j - x).abs().mean()) < 0.3 and abs(float(j.mean() - x.mean())) < 0.02
    low = degrade(x.clone(), AugmentConfig(lowres_p=1.0, lowres_side=(16, 16)), g)
    assert edges(low) < 0.6 * edges(x)
    y = degrade(x.clone(), AugmentConfig(**ROBUST), g)
    assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1 and not torch.equal(y, x)


def test_zoom_view_moves_the_landmarks_with_the_pixels():
    """A test-time framing: a bright dot drawn at a landmark is still under that landmark after the zoom."""
    from fusion_fer.transforms import zoom_view

    crops = np.full((1, 48, 48), 40, np.uint8)
    crops[0, 14:17, 14:17] = 255  # a dot centred on pixel (15, 15): crop units (15.5 / 48)
    points = np.zeros((1, 468, 3), np.float32)
    points[0, :, :2] = 0.5
    points[0, 7, :2] = 15.5 / 48
    for zoom in (1.0, 1.1, 0.9):
        c, p = zoom_view(crops, points, zoom)
        assert c.shape == crops.shape and c.dtype == np.uint8
        x, y = p[0, 7, :2] * 48 - 0.5
        assert abs(x - (15 - (24 - 15.5) * (zoom - 1))) < 1e-3  # moved away from the centre by the zoom
        assert c[0, int(round(y)), int(round(x))] > 150  # the dot is where the landmark went
        assert np.allclose(p[0, 0, :2], 0.5)  # the centre stays
