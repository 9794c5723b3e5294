"""The fused classifier: a CNN on the grey face crop, an MLP on the standardised landmarks, a fusion head.

    image (B, 1, S, S) --encode_image-->     (B, Ci) --+
                                                       +--> head --> logits (B, 7)
    landmarks (B, 1404), found (B,) --encode_landmarks--> (B, Cl) --+
    [fusion="guided"] CNN feature maps read at K mesh points (B, K, 2) --> (B, Cg) --+

The landmark MLP sees the face's shape only (normalisation removes position and size). The
guided fusion also uses *where* the points are: it samples the CNN's mid-level feature maps at
the mesh's contour points, so the head gets appearance features aligned part by part (mouth
corner, brow, eyelid) whatever the face's pose and framing.

Faces whose landmarks were not found get zero landmark features plus a "missing" flag, and
training drops the landmarks of random faces (modality dropout) so that case is learnt too.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

MODES = ("fused", "image", "landmarks")
FUSIONS = ("concat", "guided")


@dataclass
class FusionConfig:
    """Everything that rebuilds a FusionNet; saved in config.json beside the weights."""

    num_classes: int = 7
    image_size: int = 48  # input side in pixels (grey crops are resized to this)
    mode: str = "fused"  # fused | image | landmarks (the last two for the ablation)
    widths: tuple[int, ...] = (32, 64, 128, 256)  # CNN stage widths; each stage halves the resolution after the first
    depths: tuple[int, ...] = (1, 1, 2, 1)  # residual blocks per stage
    landmark_dim: int = 468 * 3  # flattened standardised landmarks
    mlp_widths: tuple[int, ...] = (512, 256)  # landmark MLP hidden sizes
    mlp_dropout: float = 0.3
    head_hidden: int = 256  # fusion head hidden size
    dropout: float = 0.4  # before the last layer
    modality_dropout: float = 0.25  # training only: share of faces whose landmarks are hidden
    aux_weight: float = 0.3  # training only: weight of the per-branch auxiliary losses (each branch must learn alone)
    fusion: str = "guided"  # guided: also CNN features read at mesh points; concat: pooled CNN + landmark MLP only
    guide_points: tuple[int, ...] = ()  # guided: mesh indices to read (default `landmarks.guide_indices()`)
    guide_stage: int = 2  # guided: CNN stage whose output is read (12 x 12 at 48 px)
    guide_dim: int = 16  # guided: channels kept per point

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"Invalid mode {self.mode!r}. Only {', '.join(MODES)} are supported.")
        if self.fusion not in FUSIONS:
            raise ValueError(f"Invalid fusion {self.fusion!r}. Only {', '.join(FUSIONS)} are supported.")
        self.widths, self.depths, self.mlp_widths = tuple(self.widths), tuple(self.depths), tuple(self.mlp_widths)
        if len(self.widths) != len(self.depths):
            raise ValueError("widths and depths need one entry per stage")
        if self.uses_points and not self.guide_points:
            from .landmarks import guide_indices

            self.guide_points = guide_indices()  # stored in config.json, so a saved model does not depend on MediaPipe's lists
        self.guide_points = tuple(int(i) for i in self.guide_points)
        if self.uses_points and not 0 <= self.guide_stage < len(self.widths):
            raise ValueError(f"guide_stage must name one of the {len(self.widths)} CNN stages")

    @property
    def uses_points(self) -> bool:
        """Whether the model reads feature maps at landmark positions (needs `points` in forward)."""
        return self.mode == "fused" and self.fusion == "guided"

    def describe(self) -> str:
        """One sentence on the network, for model cards and the app's About tab."""
        s = self.image_size
        if self.mode == "image":
            return (f"A CNN on the {s}x{s} grey face crop alone (it reads no landmarks; the mesh still runs for "
                    "the points that are drawn)")
        if self.mode == "landmarks":
            return "An MLP on the 468 standardised MediaPipe Face Landmarker landmarks alone"
        head = "a head that also reads CNN features at mesh points" if self.fusion == "guided" else "a head"
        return f"A CNN on the {s}x{s} grey face crop and an MLP on 468 MediaPipe Face Landmarker landmarks, fused by {head}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FusionConfig:
        """Inverse of `to_dict`, for config.json and args.json files, old ones included.

        Files written before guided fusion existed have no "fusion" key: they are all concat models.
        """
        return cls(**{"fusion": "concat", **d})


class ResBlock(nn.Module):
    """Pre-activation-free basic residual block (conv-BN-ReLU-conv-BN + shortcut)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(y)) + self.short(x), inplace=True)


class ImageEncoder(nn.Module):
    """Small ResNet for 48-64 px grey faces: (B, 1, S, S) -> (B, widths[-1])."""

    def __init__(self, widths: tuple[int, ...], depths: tuple[int, ...]) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        layers, cin = [], widths[0]
        for i, (w, d) in enumerate(zip(widths, depths)):
            for j in range(d):
                layers.append(ResBlock(cin, w, stride=2 if (j == 0 and i > 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.out_dim = widths[-1]
        self.stage_ends = [sum(depths[:i + 1]) - 1 for i in range(len(depths))]  # index of each stage's last block

    def forward(self, x: torch.Tensor, stage: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Pooled features (B, widths[-1]) and, when `stage` is given, that stage's feature maps."""
        x = self.stem(x)
        maps = None
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if stage is not None and i == self.stage_ends[stage]:
                maps = x
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1), maps


class GuidedPooling(nn.Module):
    """Reads feature maps at K points: (B, C, H, W), (B, K, 2) grid coords -> (B, out_dim).

    Each point's feature vector is squeezed to `point_dim` channels by a projection shared by
    all points; the flattened (K * point_dim) vector then goes through a layer whose weights are
    point-specific, so "mouth corner" and "brow" features stay apart.
    """

    def __init__(self, channels: int, num_points: int, point_dim: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        self.point_proj = nn.Sequential(nn.Conv1d(channels, point_dim, 1, bias=False), nn.BatchNorm1d(point_dim), nn.ReLU(inplace=True))
        self.mix = nn.Sequential(nn.Dropout(dropout), nn.Linear(num_points * point_dim, out_dim), nn.BatchNorm1d(out_dim),
                                 nn.ReLU(inplace=True))
        self.out_dim = out_dim

    def forward(self, maps: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        # grid_sample in float32: bf16 bilinear weights would blur a 12 x 12 map's sub-pixel positions
        feats = F.grid_sample(maps.float(), points.float().unsqueeze(2), mode="bilinear", padding_mode="zeros",
                              align_corners=False).squeeze(3)  # (B, C, K)
        return self.mix(torch.flatten(self.point_proj(feats.to(maps.dtype)), 1))


class LandmarkEncoder(nn.Module):
    """MLP on standardised landmarks: (B, D) -> (B, widths[-1])."""

    def __init__(self, in_dim: int, widths: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        layers, d = [], in_dim
        for w in widths:
            layers += [nn.Linear(d, w), nn.BatchNorm1d(w), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            d = w
        self.net = nn.Sequential(*layers)
        self.out_dim = d

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class FusionNet(nn.Module):
    """CNN + landmark MLP + fusion head (or one branch alone, for the ablation)."""

    def __init__(self, config: FusionConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or FusionConfig()
        feat = 0
        if c.mode in ("fused", "image"):
            self.image_encoder = ImageEncoder(c.widths, c.depths)
            feat += self.image_encoder.out_dim
        if c.mode in ("fused", "landmarks"):
            self.landmark_encoder = LandmarkEncoder(c.landmark_dim, c.mlp_widths, c.mlp_dropout)
            feat += self.landmark_encoder.out_dim + 1  # + the "landmarks found" flag
        if c.uses_points:
            from .landmarks import subset_mirror

            self.guided = GuidedPooling(c.widths[c.guide_stage], len(c.guide_points), c.guide_dim, c.mlp_widths[-1], c.mlp_dropout)
            feat += self.guided.out_dim
            # Flip averaging mirrors the guide points: position j of a face is position guide_mirror[j] of its flip.
            self.register_buffer("guide_mirror", torch.from_numpy(subset_mirror(c.guide_points)), persistent=False)
        self.fusion = nn.Sequential(nn.Linear(feat, c.head_hidden), nn.BatchNorm1d(c.head_hidden), nn.ReLU(inplace=True))
        self.classifier = nn.Sequential(nn.Dropout(c.dropout), nn.Linear(c.head_hidden, c.num_classes))
        if c.mode == "fused" and c.aux_weight > 0:
            # Per-branch classifiers used only for the training loss: they keep the CNN from
            # leaning on the landmarks (and vice versa), so each branch is useful on its own.
            self.aux_image = nn.Linear(self.image_encoder.out_dim, c.num_classes)
            self.aux_landmarks = nn.Linear(self.landmark_encoder.out_dim, c.num_classes)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) float images, standardised as `transforms.images_to_tensor` does -> (B, Ci)."""
        return self.image_encoder(images)[0]

    def encode_landmarks(self, landmarks: torch.Tensor, found: torch.Tensor) -> torch.Tensor:
        """(B, 1404) standardised landmarks, (B,) found flags -> (B, Cl + 1); zeros where not found."""
        f = found.to(landmarks.dtype).unsqueeze(1)
        return torch.cat([self.landmark_encoder(landmarks * f) * f, f], dim=1)

    def image_maps(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """The image branch alone: pooled features and the feature maps the guided fusion reads (None when
        it reads none); None for a landmarks-only model. It needs no landmarks, so it can run while the
        mesh is still being found (`forward(..., encoded=)`)."""
        c = self.config
        if c.mode not in ("fused", "image"):
            return None
        return self.image_encoder(images, stage=c.guide_stage if c.uses_points else None)

    def forward_features(self, images: torch.Tensor | None, landmarks: torch.Tensor, found: torch.Tensor,
                         points: torch.Tensor | None = None,
                         encoded: tuple[torch.Tensor, torch.Tensor | None] | None = None) -> dict[str, torch.Tensor]:
        """Branch features and the fused feature, for the head and the auxiliary losses.

        `encoded`: `image_maps(images)` computed beforehand (then `images` is not read)."""
        c = self.config
        feats: dict[str, torch.Tensor] = {}
        parts = []
        if c.mode in ("fused", "image"):
            feats["image"], maps = encoded if encoded is not None else self.image_maps(images)
            parts.append(feats["image"])
        if c.mode in ("fused", "landmarks"):
            lm = self.encode_landmarks(landmarks, found)
            feats["landmarks"] = lm[:, :-1]
            parts.append(lm)
        if c.uses_points:
            if points is None:
                raise ValueError("this model reads features at landmark positions: pass points (B, K, 2)")
            f = found.to(maps.dtype).unsqueeze(1)
            parts.append(self.guided(maps, points) * f)  # no landmarks, no positions to read
        feats["fused"] = self.fusion(torch.cat(parts, dim=1))
        return feats

    def head(self, fused: torch.Tensor) -> torch.Tensor:
        """(B, head_hidden) -> (B, num_classes) logits."""
        return self.classifier(fused)

    def forward(self, images: torch.Tensor | None, landmarks: torch.Tensor, found: torch.Tensor,
                points: torch.Tensor | None = None,
                encoded: tuple[torch.Tensor, torch.Tensor | None] | None = None) -> torch.Tensor:
        """Logits (B, num_classes).

        `images` (B, 1, S, S); `landmarks` (B, 1404); `found` (B,) bool; `points` (B, K, 2): the
        guide points in grid coordinates (`transforms.guide_grid`), needed only when `config.uses_points`;
        `encoded`: `image_maps(images)` when it was computed already.
        """
        return self.head(self.forward_features(images, landmarks, found, points, encoded)["fused"])

    def training_loss(self, images, landmarks, found, targets, criterion, points=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Main loss plus the auxiliary branch losses; returns (loss, main logits)."""
        feats = self.forward_features(images, landmarks, found, points)
        logits = self.head(feats["fused"])
        loss = criterion(logits, targets)
        if hasattr(self, "aux_image"):
            w = self.config.aux_weight
            loss = loss + w * criterion(self.aux_image(feats["image"]), targets)
            m = found.bool()
            if m.any():
                loss = loss + w * criterion(self.aux_landmarks(feats["landmarks"][m]), targets[m])
        return loss, logits


@torch.inference_mode()
def flip_average(model: FusionNet, images: torch.Tensor, landmarks: torch.Tensor,
                 landmarks_flipped: torch.Tensor, found: torch.Tensor, points: torch.Tensor | None = None,
                 encoded: tuple[torch.Tensor, torch.Tensor | None] | None = None) -> torch.Tensor:
    """Test-time flip averaging in one forward pass.

    Args:
        images: (B, 1, S, S); their horizontal flips are made here.
        landmarks: (B, 1404) standardised landmarks of the faces.
        landmarks_flipped: (B, 1404) standardised *mirrored* landmarks (`landmarks.mirror` before
            standardising), i.e. what the mesh would give on the flipped faces.
        found: (B,) landmark flags.
        points: (B, K, 2) guide points (grid coordinates) for models that read them; their
            mirrors (x negated, left/right swapped) are made here.
        encoded: `model.image_maps(with_mirrors(images))`, when it was computed already.

    Returns:
        (B, num_classes) logits whose softmax is the mean of both views' probabilities
        (log of the averaged probabilities).
    """
    b = landmarks.shape[0]
    x = None if encoded is not None else with_mirrors(images)
    z = torch.cat([landmarks, landmarks_flipped])
    f = torch.cat([found, found])
    p = None
    if points is not None:
        pf = points[:, model.guide_mirror].clone()
        pf[..., 0] = -pf[..., 0]
        p = torch.cat([points, pf])
    probs = torch.softmax(model(x, z, f, p, encoded).float(), dim=1)
    return torch.log((probs[:b] + probs[b:]) / 2)


def with_mirrors(images: torch.Tensor) -> torch.Tensor:
    """(B, 1, S, S) -> (2B, 1, S, S): the images, then their horizontal mirrors (`flip_average`'s batch)."""
    return torch.cat([images, torch.flip(images, dims=[3])])
