"""Training augmentation (`ClassificationPresetTrain` in torchvision's terms), on whole batches in torch.

One random affine per face moves the image (`grid_sample`) and its landmarks (the same matrix)
together; a flip also swaps the landmark indices left/right. Brightness, contrast and random erasing
touch the image only. The eval preset it builds on is `fusion_fer.transforms`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..landmarks import LandmarkStats, normalize
from ..transforms import IMAGE_MEAN, IMAGE_STD, unit_images, guide_grid, warp_images, warp_points


@dataclass
class AugmentConfig:
    """Training augmentation (`ClassificationPresetTrain` in torchvision's terms)."""

    scale: tuple[float, float] = (0.85, 1.15)  # zoom range (random resized crop)
    translate: float = 0.08  # max shift, as a fraction of the side
    rotate: float = 15.0  # max rotation, degrees
    hflip: float = 0.5  # flip probability
    brightness: float = 0.25  # max additive change, in [0, 1] grey units
    contrast: float = 0.25  # max relative change
    erase_p: float = 0.5  # random erasing probability
    erase_area: tuple[float, float] = (0.02, 0.12)  # erased share of the image
    landmark_noise: float = 0.01  # std of Gaussian jitter on normalised landmarks
    # Robustness to other cameras and files (all off by default; `ROBUST` turns them on).
    gamma: float = 0.0  # max |log gamma|: grey**gamma with gamma in [e^-g, e^g]
    lowres_p: float = 0.0  # probability of a low-resolution face: down to `lowres_side` px, then back up
    lowres_side: tuple[int, int] = (16, 40)
    blur_p: float = 0.0  # probability of a Gaussian blur
    blur_sigma: tuple[float, float] = (0.4, 1.2)  # in pixels of the training crop
    noise_p: float = 0.0  # probability of additive Gaussian noise
    noise_std: tuple[float, float] = (0.01, 0.05)  # in [0, 1] grey units
    jpeg_p: float = 0.0  # probability of a JPEG round trip
    jpeg_quality: tuple[int, int] = (30, 95)
    # Sharp photos (a phone's sharpening): FER2013's faces are soft, people's own photos are not.
    sharpen_p: float = 0.0  # probability of an unsharp mask
    sharpen_amount: tuple[float, float] = (0.5, 1.5)  # x + amount * (x - blur(x, 1 px))


# The robustness preset (`train.py --robust`): framing jitter wider than the spread between MTCNN's
# framing and FER2013's (docs/calibration.md: IQR 1.00-1.19 of the box), low resolution, blur,
# gamma, noise and JPEG.
ROBUST = dict(scale=(0.8, 1.25), translate=0.1, gamma=0.35, lowres_p=0.25, blur_p=0.2, noise_p=0.25, jpeg_p=0.4)

# The clear-photo preset (`train.py --photos`): a few hundred faces per source are seen many times an epoch, so
# each look differs more: framing and scale jitter, light (gamma, brightness, contrast), low resolution, blur,
# JPEG and webcam-like noise. The cache holds grey crops, so colour-to-grey variation comes through gamma and
# contrast only.
PHOTO = dict(scale=(0.75, 1.3), translate=0.12, brightness=0.3, contrast=0.35, gamma=0.4, lowres_p=0.4, blur_p=0.3,
             noise_p=0.35, noise_std=(0.01, 0.06), jpeg_p=0.5)


def random_affine(n: int, cfg: AugmentConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random affine matrices in `affine_grid`'s convention (output coords -> input coords).

    Returns:
        theta (n, 2, 3) float32 and flipped (n,) bool.
    """
    u = lambda: torch.rand(n, generator=generator)  # noqa: E731
    scale = cfg.scale[0] + (cfg.scale[1] - cfg.scale[0]) * u()  # >1 zooms in
    angle = (2 * u() - 1) * math.radians(cfg.rotate)
    tx, ty = (2 * u() - 1) * cfg.translate * 2, (2 * u() - 1) * cfg.translate * 2  # normalised coords span 2
    flipped = u() < cfg.hflip
    sx = torch.where(flipped, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([
        torch.stack([cos * sx, -sin, tx], dim=1),
        torch.stack([sin * sx, cos, ty], dim=1),
    ], dim=1)
    return theta.float(), flipped


def _pick(p: float, n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.nonzero(torch.rand(n, generator=generator) < p).flatten()


def _between(lo: float, hi: float, n: int, generator: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur of (B, 1, S, S) with standard deviations `sigma` (B,), in pixels."""
    r = int(math.ceil(3 * float(sigma.max())))
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t[None, :] / sigma[:, None]) ** 2)
    k = k / k.sum(1, keepdim=True)  # (B, 2r+1)
    b = x.shape[0]
    y = F.pad(x, (r, r, r, r), mode="replicate").reshape(1, b, x.shape[2] + 2 * r, x.shape[3] + 2 * r)
    y = F.conv2d(y, k[:, None, None, :], groups=b)
    y = F.conv2d(y, k[:, None, :, None], groups=b)
    return y.reshape_as(x)


def jpeg_round_trip(x: torch.Tensor, qualities: torch.Tensor) -> torch.Tensor:
    """(B, 1, S, S) images in [0, 1] through grey JPEG at the given qualities (Pillow)."""
    import io

    from PIL import Image

    out = x.clone()
    for i, q in enumerate(qualities.tolist()):
        im = Image.fromarray((x[i, 0] * 255).round().clamp(0, 255).to(torch.uint8).numpy(), "L")
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=int(q))
        buf.seek(0)
        out[i, 0] = torch.from_numpy(np.asarray(Image.open(buf).convert("L"), dtype=np.float32) / 255.0)
    return out


def degrade(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """The robustness part of the preset on (B, 1, S, S) images in [0, 1]: gamma, low resolution,
    blur, sharpening, noise, JPEG (each with its own probability, in the order a camera and a file apply them)."""
    b, size = x.shape[0], x.shape[-1]
    if cfg.gamma > 0:
        g = torch.exp(_between(-cfg.gamma, cfg.gamma, b, generator))
        x = x.clamp_min(1e-4) ** g[:, None, None, None]
    idx = _pick(cfg.lowres_p, b, generator)
    if len(idx):
        sides = torch.randint(cfg.lowres_side[0], cfg.lowres_side[1] + 1, (len(idx),), generator=generator)
        for i, s in zip(idx.tolist(), sides.tolist()):
            if s < size:
                small = F.interpolate(x[i:i + 1], size=(s, s), mode="bilinear", align_corners=False, antialias=True)
                x[i:i + 1] = F.interpolate(small, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    idx = _pick(cfg.blur_p, b, generator)
    if len(idx):
        x[idx] = gaussian_blur(x[idx], _between(*cfg.blur_sigma, len(idx), generator))
    idx = _pick(cfg.sharpen_p, b, generator) if cfg.sharpen_p > 0 else []  # off: the random stream stays as it was
    if len(idx):
        amount = _between(*cfg.sharpen_amount, len(idx), generator)[:, None, None, None]
        x[idx] = (x[idx] + amount * (x[idx] - gaussian_blur(x[idx], torch.ones(len(idx))))).clamp(0, 1)
    idx = _pick(cfg.noise_p, b, generator)
    if len(idx):
        std = _between(*cfg.noise_std, len(idx), generator)[:, None, None, None]
        x[idx] = (x[idx] + std * torch.randn(x[idx].shape, generator=generator)).clamp(0, 1)
    idx = _pick(cfg.jpeg_p, b, generator)
    if len(idx):
        q = torch.randint(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1, (len(idx),), generator=generator)
        x[idx] = jpeg_round_trip(x[idx], q)
    return x


def augment_batch(images: np.ndarray, points: np.ndarray, found: np.ndarray, stats: LandmarkStats,
                  size: int, cfg: AugmentConfig, generator: torch.Generator,
                  guide_points: tuple[int, ...] = ()) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The training preset on a batch.

    Args:
        images: (B, H, W) uint8 grey crops; points: (B, 468, 3) crop units; found: (B,) bool.
        guide_points: mesh indices whose moved positions the model reads (guided fusion), or ().

    Returns:
        images (B, 1, size, size) standardised, landmarks (B, 1404) standardised (zeros where not
        found), and the guide points' positions (B, K, 2) after the same warp (None without guide points).
    """
    x = unit_images(images, size)
    b = x.shape[0]
    theta, flipped = random_affine(b, cfg, generator)
    x = warp_images(x, theta)
    pts_t = warp_points(torch.as_tensor(points), theta, flipped)
    pts = pts_t.numpy()
    grid = guide_grid(pts_t, guide_points) if guide_points else None

    # photometric: image only
    r = lambda *s: torch.rand(*s, generator=generator)  # noqa: E731
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = 1 + (2 * r(b, 1, 1, 1) - 1) * cfg.contrast
    bright = (2 * r(b, 1, 1, 1) - 1) * cfg.brightness
    x = ((x - mean) * contrast + mean + bright).clamp(0, 1)
    x = degrade(x, cfg, generator)
    x = (x - IMAGE_MEAN) / IMAGE_STD
    erase = r(b) < cfg.erase_p
    if erase.any():
        area = cfg.erase_area[0] + (cfg.erase_area[1] - cfg.erase_area[0]) * r(b)
        aspect = torch.exp((2 * r(b) - 1) * math.log(2))
        h = (torch.sqrt(area * aspect) * size).clamp(1, size).long()
        w = (torch.sqrt(area / aspect) * size).clamp(1, size).long()
        y0 = (r(b) * (size - h + 1)).long()
        x0 = (r(b) * (size - w + 1)).long()
        noise = torch.randn(x.shape, generator=generator)
        for i in torch.nonzero(erase).flatten().tolist():
            x[i, :, y0[i]:y0[i] + h[i], x0[i]:x0[i] + w[i]] = noise[i, :, y0[i]:y0[i] + h[i], x0[i]:x0[i] + w[i]]

    norm = normalize(pts)
    if cfg.landmark_noise > 0:
        norm = norm + np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=generator))).normal(
            0, cfg.landmark_noise, norm.shape).astype(np.float32)
    z = stats(norm)
    z[~np.asarray(found, bool)] = 0.0
    return x.contiguous(memory_format=torch.channels_last), torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32)), grid
