"""research/augment.py: augmentation moves image and landmarks together, as the mesh itself sees it."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from fusion_fer.landmarks import LandmarkStats, guide_indices, normalize, subset_mirror
from fusion_fer.research.augment import AugmentConfig, augment_batch, random_affine
from fusion_fer.transforms import guide_grid, images_to_tensor


def test_photometric_jitter_leaves_landmarks_alone(mesh, hopper_crop):
    grey = cv2.cvtColor(hopper_crop, cv2.COLOR_RGB2GRAY)
    pts = mesh(hopper_crop).points
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
    pts = mesh(hopper_crop).points
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

    from fusion_fer.research.augment import ROBUST, AugmentConfig, degrade, gaussian_blur, jpeg_round_trip

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


def test_sharpening_adds_edges_and_is_off_by_default():
    """--sharpen: an unsharp mask makes soft faces look like a phone's sharp photo; without it, nothing changes."""
    import torch

    from fusion_fer.research.augment import AugmentConfig, degrade, gaussian_blur

    g = torch.Generator().manual_seed(0)
    soft = gaussian_blur(torch.rand(6, 1, 48, 48), torch.full((6,), 1.5))
    edges = lambda t: (t[..., 1:] - t[..., :-1]).abs().mean()  # noqa: E731
    assert torch.equal(degrade(soft.clone(), AugmentConfig(), g), soft)
    sharp = degrade(soft.clone(), AugmentConfig(sharpen_p=1.0), g)
    assert edges(sharp) > 1.3 * edges(soft) and 0 <= float(sharp.min()) and float(sharp.max()) <= 1
    assert abs(float(sharp.mean() - soft.mean())) < 0.02
