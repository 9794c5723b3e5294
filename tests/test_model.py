"""model.py: shapes, no NaNs, each mode, the no-landmarks path and flip averaging."""
from __future__ import annotations

import pytest
import torch

from fusion_fer.model import FusionConfig, FusionNet, flip_average


GUIDED = FusionConfig()  # the default design
CONCAT = FusionConfig(fusion="concat")


def _points(n: int, k: int = len(GUIDED.guide_points)) -> torch.Tensor:
    return torch.rand(n, k, 2) * 1.6 - 0.8  # inside the crop, in grid coordinates


@pytest.mark.parametrize("mode,fusion", [("fused", "concat"), ("fused", "guided"), ("image", "concat"), ("landmarks", "concat")])
def test_forward_shapes_and_finite(mode, fusion):
    torch.manual_seed(0)
    m = FusionNet(FusionConfig(mode=mode, fusion=fusion)).eval()
    x, z, f = torch.randn(3, 1, 48, 48), torch.randn(3, 1404), torch.tensor([True, False, True])
    g = _points(3) if m.config.uses_points else None
    out = m(x, z, f, g)
    assert out.shape == (3, 7) and torch.isfinite(out).all()
    m.train()
    loss, logits = m.training_loss(x, z, f, torch.tensor([0, 3, 6]), torch.nn.CrossEntropyLoss(), points=g)
    loss.backward()
    assert torch.isfinite(loss) and logits.shape == (3, 7)


def test_missing_landmarks_are_ignored_not_read():
    torch.manual_seed(0)
    m = FusionNet(CONCAT).eval()
    x, f = torch.randn(2, 1, 48, 48), torch.tensor([False, False])
    a = m(x, torch.randn(2, 1404), f)
    b = m(x, torch.randn(2, 1404) * 100, f)
    assert torch.allclose(a, b)
    assert not torch.allclose(a, m(x, torch.randn(2, 1404), torch.tensor([True, True])))


def test_flip_average_is_the_mean_of_both_views():
    torch.manual_seed(0)
    m = FusionNet(FusionConfig(image_size=64, fusion="concat")).eval()
    x, z, zm, f = torch.randn(4, 1, 64, 64), torch.randn(4, 1404), torch.randn(4, 1404), torch.ones(4, dtype=torch.bool)
    got = torch.exp(flip_average(m, x, z, zm, f))
    with torch.no_grad():
        want = (torch.softmax(m(x, z, f), 1) + torch.softmax(m(torch.flip(x, dims=[3]), zm, f), 1)) / 2
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(got.sum(1), torch.ones(4))


def test_bad_config_names_the_choices():
    with pytest.raises(ValueError, match="Only fused, image, landmarks"):
        FusionConfig(mode="late")
    with pytest.raises(ValueError, match="Only concat, guided"):
        FusionConfig(fusion="attention")
    with pytest.raises(ValueError, match="pass points"):
        FusionNet(GUIDED).eval()(torch.randn(1, 1, 48, 48), torch.randn(1, 1404), torch.ones(1, dtype=torch.bool))


def test_guided_fusion_reads_the_maps_at_the_points_only_when_landmarks_exist():
    torch.manual_seed(0)
    m = FusionNet(GUIDED).eval()
    with torch.no_grad():
        m.classifier[1].weight.mul_(30)
    x, z, g = torch.randn(2, 1, 48, 48), torch.randn(2, 1404), _points(2)
    found, missing = torch.ones(2, dtype=torch.bool), torch.zeros(2, dtype=torch.bool)
    moved = g.roll(1, dims=1)  # same places, other points: the point-specific weights must notice
    assert not torch.allclose(m(x, z, found, g), m(x, z, found, moved), atol=1e-4)
    assert torch.allclose(m(x, z, missing, g), m(x, z, missing, moved))
    # Reading features, not coordinates: the same points on a blank image give another answer.
    assert not torch.allclose(m(x, z, found, g), m(torch.zeros_like(x), z, found, g), atol=1e-4)


def test_flip_average_is_exactly_mirror_symmetric():
    """Given a face's landmarks and their mirror, the flipped face gets the same probabilities."""
    torch.manual_seed(0)
    m = FusionNet(CONCAT).eval()
    x, z, zm, f = torch.randn(2, 1, 48, 48), torch.randn(2, 1404), torch.randn(2, 1404), torch.ones(2, dtype=torch.bool)
    a = flip_average(m, x, z, zm, f)
    b = flip_average(m, torch.flip(x, dims=[3]), zm, z, f)
    assert torch.allclose(a, b, atol=1e-5)
    with torch.no_grad():
        assert not torch.allclose(m(x, z, f), m(torch.flip(x, dims=[3]), zm, f), atol=1e-5)  # one view alone is not


def test_guided_flip_average_mirrors_the_points():
    """The flipped face with mirrored points (x negated, left/right swapped) gets the same probabilities."""
    torch.manual_seed(0)
    m = FusionNet(GUIDED).eval()
    x, z, zm, f, g = torch.randn(2, 1, 48, 48), torch.randn(2, 1404), torch.randn(2, 1404), torch.ones(2, dtype=torch.bool), _points(2)
    gm = g[:, m.guide_mirror].clone()
    gm[..., 0] = -gm[..., 0]
    a = flip_average(m, x, z, zm, f, g)
    assert torch.allclose(a, flip_average(m, torch.flip(x, dims=[3]), zm, z, f, gm), atol=1e-5)
    assert not torch.allclose(a, flip_average(m, torch.flip(x, dims=[3]), zm, z, f, g), atol=1e-4)  # unmirrored points differ


def test_image_only_network_reads_no_landmarks_and_its_card_says_so():
    """An image-only network (the default `ferplus` may be one) gives the same answer whatever the mesh found."""
    torch.manual_seed(0)
    m = FusionNet(FusionConfig(mode="image")).eval()
    x = torch.randn(2, 1, 48, 48)
    a = m(x, torch.randn(2, 1404), torch.tensor([True, True]))
    b = m(x, torch.randn(2, 1404) * 100, torch.tensor([False, True]))
    assert torch.allclose(a, b) and not torch.allclose(a, m(torch.randn(2, 1, 48, 48), torch.zeros(2, 1404), torch.tensor([False, False])))
    assert "no landmarks" in m.config.describe() and "MLP" not in m.config.describe()
    assert "mesh points" in GUIDED.describe() and "MLP" in GUIDED.describe()
    assert "mesh points" not in CONCAT.describe() and "MLP" in CONCAT.describe()
