"""SR losses: USM sharpening and the GAN loss.

(PSNR/SSIM: test_metrics.py; the SR preview grid: test_preview.py.)"""

from __future__ import annotations

import math

import pytest
import torch

from redegkit.sr.losses import gan_loss, gaussian_blur, usm_sharpen

pytestmark = pytest.mark.usefixtures("one_thread")


def test_usm_sharpens_edges_and_keeps_flat_areas():
    x = torch.full((1, 3, 64, 64), -0.5)
    x[..., :, 32:] = 0.5  # a vertical edge
    y = usm_sharpen(x)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    assert torch.allclose(y[..., :, :4], x[..., :, :4], atol=1e-3)  # flat far from the edge: untouched
    assert (y[0, :, 32, 33] > x[0, :, 32, 33] + 0.05).all()  # overshoot on the bright side
    assert (y[0, :, 32, 30] < x[0, :, 32, 30] - 0.05).all()  # and on the dark side
    # blur preserves a constant and sums to one, even on patches smaller than the kernel
    c = torch.full((2, 3, 16, 16), 0.25)
    assert torch.allclose(gaussian_blur(c, 51), c, atol=1e-6)


def test_gan_loss_values():
    z = torch.zeros(2, 1, 4, 4)
    assert gan_loss(z, True).item() == pytest.approx(math.log(2))
    assert gan_loss(torch.full_like(z, 20.0), True).item() < 1e-6
    assert gan_loss(torch.full_like(z, 20.0), False).item() > 10
