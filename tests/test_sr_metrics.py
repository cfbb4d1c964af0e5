"""Y-channel PSNR/SSIM (SR literature convention), USM sharpening, GAN loss, preview grid."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from redegkit.sr.losses import gan_loss, gaussian_blur, usm_sharpen
from redegkit.sr.metrics import preview_grid, psnr_y, rgb_to_y, ssim_y

from .sr_helpers import textured

pytestmark = pytest.mark.usefixtures("one_thread")


def test_rgb_to_y_bt601_studio_range():
    px = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], np.uint8)
    y = rgb_to_y(px)[0]
    assert y[0] == pytest.approx(16.0) and y[1] == pytest.approx(235.0) and y[2] == pytest.approx(16 + 65.481)


def test_psnr_known_value_and_border_crop():
    a = np.full((20, 20, 3), 100, np.uint8)
    b = a.copy()
    b[:, :, :] = 110  # Y differs by 10 * (65.481+128.553+24.966)/255 = 8.588
    want = 10 * math.log10(255**2 / (10 * 219 / 255) ** 2)
    assert psnr_y(a, b) == pytest.approx(want, rel=1e-9)
    assert psnr_y(a, a) == float("inf")
    c = a.copy()
    c[:4] = 0  # damage only the border rows: cropped away with border=4
    assert psnr_y(a, c, border=4) == float("inf")
    assert psnr_y(a, c) < 30


def test_ssim_identity_and_degradation():
    img = textured(48, 48, 0)
    assert ssim_y(img, img, border=4) == pytest.approx(1.0)
    noisy = np.clip(img.astype(int) + np.random.default_rng(0).normal(0, 25, img.shape), 0, 255).astype(np.uint8)
    assert 0 < ssim_y(noisy, img, border=4) < 0.9
    with pytest.raises(ValueError, match="11x11"):
        ssim_y(img[:12, :12], img[:12, :12], border=2)
    with pytest.raises(ValueError, match="shape"):
        psnr_y(img, img[:10])


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


def test_preview_grid_layout():
    lq, sr, hq = textured(8, 10, 0), textured(32, 40, 1), textured(32, 40, 2)
    grid = preview_grid([(lq, sr, hq), (lq, sr, None)])
    assert grid.shape == (2 * 34, 3 * 40, 3) and grid.dtype == np.uint8
    assert np.array_equal(grid[:32, 40:80], sr) and np.array_equal(grid[:32, 80:120], hq)
    assert grid[34:66, 80:120].max() == 0  # no HQ: blank
