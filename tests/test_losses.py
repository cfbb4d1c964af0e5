"""Fitting losses: defaults are the paper's, each term has the expected sign and scale."""

from __future__ import annotations

import pytest
import torch

from redegkit.config import ConfigError, resolve_config
from redegkit.fit.losses import (
    LossConfig,
    build_perceptual_loss,
    contrastive_loss,
    hinge_d_loss,
    hinge_g_loss,
    pixel_loss,
    same_degradation_loss,
)
from redegkit.models.perceptual import PerceptualLoss
from redegkit.weights import WeightsMissingError


def test_defaults_are_the_papers():
    c = LossConfig()
    assert (c.pixel, c.perceptual, c.style, c.same_degradation, c.gan) == (10.0, 0.2, 160.0, 100.0, 0.01)
    assert (c.contrastive, c.contrastive_scale, c.contrastive_eps) == (4.0, 10.0, 1e-7)
    assert c.vgg_layers == {"conv1_2": 2.0, "conv2_2": 1.2, "conv3_4": 0.6, "conv4_4": 0.2, "conv5_4": 0.1}
    assert c.use_perceptual is True


def test_config_rejects_typos_and_bad_layers():
    with pytest.raises(ConfigError, match="pixle"):
        resolve_config("loss", overrides={"pixle": 1.0}, model=LossConfig)
    with pytest.raises(ConfigError, match="conv6_1"):
        resolve_config("loss", overrides={"vgg_layers": {"conv6_1": 1.0}}, model=LossConfig)
    with pytest.raises(ConfigError, match="pixel"):
        resolve_config("loss", overrides={"pixel": -1.0}, model=LossConfig)
    assert resolve_config("loss", overrides={"gan": 0.1}, model=LossConfig).gan == 0.1


def test_pixel_loss_zero_on_identity_and_scaled():
    a = torch.rand(2, 3, 8, 8) * 2 - 1
    assert pixel_loss(a, a.clone()).item() == 0
    assert pixel_loss(a, a + 0.5).item() == pytest.approx(10.0 * 0.5, rel=1e-5)
    assert pixel_loss(a, a + 0.5, weight=1.0).item() == pytest.approx(0.5, rel=1e-5)
    assert pixel_loss(a.bfloat16(), a.bfloat16()).dtype == torch.float32


def test_same_degradation_loss():
    z = torch.randn(4, 16)
    assert same_degradation_loss(z, z.clone()).item() == 0
    assert same_degradation_loss(z, z - 0.01).item() == pytest.approx(100 * 0.01, rel=1e-4)


def test_contrastive_decreases_as_real_moves_away():
    zf = torch.randn(4, 16)
    values = [contrastive_loss(zf + d, zf).item() for d in (0.01, 0.1, 1.0, 10.0)]
    assert all(v > 0 for v in values)
    assert values == sorted(values, reverse=True)
    assert values[2] == pytest.approx(4.0 / (10.0 * 1.0 + 1e-7), rel=1e-5)
    # identical embeddings: finite (eps), very large
    same = contrastive_loss(zf, zf.clone())
    assert torch.isfinite(same) and same.item() == pytest.approx(4.0 / 1e-7, rel=1e-5)
    # its gradient pushes zR away from zF
    zr = (zf + 0.1).requires_grad_(True)
    contrastive_loss(zr, zf).backward()
    assert (zr.grad < 0).all()  # zR > zF everywhere, so descending the loss increases zR - zF


def test_hinge_losses_on_hand_computed_logits():
    real = torch.tensor([[2.0], [0.5], [-1.0]])
    fake = torch.tensor([[-2.0], [0.0], [1.0]])
    # real: relu(1-2)=0, relu(0.5)=0.5, relu(2)=2 -> mean 2.5/3; fake: 0, 1, 2 -> mean 1
    assert hinge_d_loss(real, fake).item() == pytest.approx(2.5 / 3 + 1.0)
    assert hinge_d_loss(torch.full((4, 1), 3.0), torch.full((4, 1), -3.0)).item() == 0  # confident and right
    assert hinge_g_loss(fake).item() == pytest.approx(-(-2.0 + 0.0 + 1.0) / 3)
    assert hinge_g_loss(torch.tensor([5.0])).item() < hinge_g_loss(torch.tensor([-5.0])).item()


def test_every_term_finite_on_a_batch():
    x, y = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    z1, z2, z3 = torch.randn(3, 2, 8)
    logits = torch.randn(2, 1)
    terms = [
        pixel_loss(x, y),
        same_degradation_loss(z1, z2),
        contrastive_loss(z3, z2),
        hinge_d_loss(logits, -logits),
        hinge_g_loss(logits),
    ]
    assert all(torch.isfinite(t) and t.ndim == 0 for t in terms)
    assert all(t.item() >= 0 for t in terms[:4])


def test_build_perceptual_respects_switch_and_never_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("REDEG_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert build_perceptual_loss(LossConfig(use_perceptual=False)) is None
    assert build_perceptual_loss(LossConfig(perceptual=0, style=0)) is None
    with pytest.raises(WeightsMissingError, match="vgg19-dcbb9e9d.pth"):
        build_perceptual_loss(LossConfig())
    loss = build_perceptual_loss(LossConfig(vgg_layers={"conv1_2": 2.0}), random_weights=True)
    assert isinstance(loss, PerceptualLoss)
    assert (loss.perceptual_weight, loss.style_weight, loss.layer_weights) == (0.2, 160.0, {"conv1_2": 2.0})
