"""The eval preset, shared by serving, evaluation and training: how a face crop and its mesh become
network inputs, and the geometry that moves a crop and its landmarks together (test-time framings;
training augmentation builds on it in `fusion_fer.research.augment`).
"""
from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F

from .landmarks import LandmarkStats, mirror, mirror_index, normalize

IMAGE_MEAN = 0.5  # grey level / 255; FER2013's mean is 0.51 and std 0.25 (rounded: a user's data won't match exactly)
IMAGE_STD = 0.25


def unit_images(images: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """(B, H, W) uint8 grey crops -> (B, 1, size, size) float in 0..1."""
    x = torch.as_tensor(images).float().unsqueeze(1) / 255.0
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


def images_to_tensor(images: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """(B, H, W) uint8 grey crops -> (B, 1, size, size) float, standardised."""
    return (unit_images(images, size) - IMAGE_MEAN) / IMAGE_STD


def landmark_features(points: np.ndarray, found: np.ndarray, stats: LandmarkStats) -> tuple[np.ndarray, np.ndarray]:
    """Crop-unit points (B, 468, 3) -> standardised features of the faces and of their mirrors.

    Returns:
        (features, mirrored_features), each (B, 1404) float32; zeros where `found` is False.
    """
    norm = normalize(points)
    feats = stats(norm)
    feats_m = stats(mirror(norm))
    mask = np.asarray(found, bool)
    feats[~mask] = 0.0
    feats_m[~mask] = 0.0
    return feats.astype(np.float32), feats_m.astype(np.float32)


def guide_grid(points: np.ndarray | torch.Tensor, indices: tuple[int, ...]) -> torch.Tensor:
    """Crop-unit points (B, 468, 3) -> (B, K, 2) positions of the guide points in `grid_sample`'s
    [-1, 1] coordinates (align_corners=False: -1 is the crop's outer edge, as for `warp_points`)."""
    pts = torch.as_tensor(points)[:, list(indices), :2].float()
    return pts * 2 - 1


def warp_images(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """(B, 1, S, S) float images under `theta`; pixels from outside repeat the border."""
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def warp_points(points: torch.Tensor, theta: torch.Tensor, flipped: torch.Tensor) -> torch.Tensor:
    """Moves crop-unit landmarks (B, 468, 3) exactly as `warp_images` moves the pixels.

    A pixel at output position p shows input position theta @ [p, 1], so a landmark at q
    moves to A^-1 (q - t). Flipped faces also get their indices mirrored, so that index i
    keeps its anatomical meaning (as the mesh would label the flipped face).
    """
    a, t = theta[:, :, :2].double(), theta[:, :, 2].double()
    q = points[..., :2].double() * 2 - 1  # crop units -> affine_grid's [-1, 1]
    p = torch.linalg.solve(a, (q - t[:, None, :]).transpose(1, 2)).transpose(1, 2)
    out = points.clone().double()
    out[..., :2] = (p + 1) / 2
    out[..., 2] = out[..., 2] / torch.sqrt(torch.abs(torch.linalg.det(a)))[:, None]  # depth follows the zoom
    idx = torch.as_tensor(mirror_index())
    out[flipped] = out[flipped][:, idx]
    return out.float()


def _zoom_theta(b: int, zoom: float) -> torch.Tensor:
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0 / zoom
    return theta


def zoom_crops(crops: np.ndarray, zoom: float) -> np.ndarray:
    """Another framing of the same faces, for test-time averaging: (B, S, S) uint8 grey crops zoomed about
    their centre (zoom > 1 frames tighter, < 1 looser; the border repeats). `zoom_points` moves their
    landmarks the same way, so the mesh need not run again (and may still be running)."""
    if zoom == 1.0:
        return crops
    x = warp_images(torch.as_tensor(crops).float().unsqueeze(1), _zoom_theta(len(crops), zoom))
    return x[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()


def zoom_points(points: np.ndarray, zoom: float) -> np.ndarray:
    """(B, 468, 3) crop-unit landmarks moved as `zoom_crops` moves the pixels (float32)."""
    if zoom == 1.0:
        return points
    b = len(points)
    return warp_points(torch.as_tensor(points).float(), _zoom_theta(b, zoom), torch.zeros(b, dtype=torch.bool)).numpy()


def soften(crops: np.ndarray, sigma: float) -> np.ndarray:
    """(B, S, S) uint8 grey crops blurred by a Gaussian of `sigma` pixels (0: unchanged).

    FER2013's faces are soft, low-resolution web images; a crop of a sharp photo can be made to look
    like them at test time (a model folder's `soften`)."""
    if sigma <= 0:
        return crops
    import cv2

    return np.stack([cv2.GaussianBlur(c, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE) for c in crops])
