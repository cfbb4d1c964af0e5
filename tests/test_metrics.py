"""The one PSNR and SSIM (redegkit.metrics): golden values, Y channel, border, batches, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from redegkit.metrics import psnr, rgb_to_y, ssim

from .sr_helpers import textured


def _flat(v: int, h: int = 20, w: int = 20) -> np.ndarray:
    return np.full((h, w, 3), v, np.uint8)


def test_rgb_to_y_bt601_studio_range():
    px = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    y = rgb_to_y(px)[0]
    assert y.tolist() == pytest.approx([16.0, 235.0, 81.481, 144.553, 40.966], abs=1e-12)
    assert rgb_to_y(np.stack([px, px])).shape == (2, 1, 5)  # stacks convert too


def test_psnr_golden_one_grey_level():
    # every pixel off by one grey level: MSE 1 on RGB, so PSNR = 20 log10(255)
    assert psnr(_flat(100), _flat(101), y=False) == pytest.approx(48.1308036086791, abs=1e-12)
    assert 20 * math.log10(255) == pytest.approx(48.1308036086791, abs=1e-12)
    # on Y (BT.601 studio range) one grey level in R, G and B is (65.481 + 128.553 + 24.966) / 255
    # = 219/255 of a level: PSNR_Y = 20 log10(255^2 / 219)
    assert psnr(_flat(100), _flat(101)) == pytest.approx(49.45272492055584, abs=1e-9)
    assert psnr(_flat(100), _flat(101), y=True) == psnr(_flat(100), _flat(101))  # Y is the default


def test_psnr_known_value_and_border_crop():
    a, b = _flat(100), _flat(110)  # Y differs by 10 * 219/255
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / (10 * 219 / 255) ** 2), rel=1e-12)
    assert psnr(a, a) == math.inf and psnr(a, a, y=False, equal=100.0) == 100.0
    c = a.copy()
    c[:4] = 0  # damage only the border rows: cropped away with border=4
    assert psnr(a, c, border=4) == math.inf and psnr(a, c) < 30
    with pytest.raises(ValueError, match="too small"):
        psnr(a, c, border=10)


def test_psnr_of_a_batch_is_the_mean_of_the_images():
    a = np.stack([_flat(100), _flat(100), _flat(50)])
    b = np.stack([_flat(100), _flat(101), _flat(52)])
    per = [psnr(x, y, y=False, equal=100.0) for x, y in zip(a, b, strict=True)]
    assert per[0] == 100.0 and per[2] == pytest.approx(20 * math.log10(255 / 2), abs=1e-12)
    assert psnr(a, b, y=False, equal=100.0) == pytest.approx(np.mean(per), abs=1e-12)
    assert psnr(a, b, y=False) == math.inf  # one exact image: an infinite mean unless capped
    assert psnr(a[1:2], b[1:2], y=False) == per[1]


def test_ssim_identity_and_degradation():
    img = textured(48, 48, 0)
    assert ssim(img, img, border=4) == pytest.approx(1.0)
    noisy = np.clip(img.astype(int) + np.random.default_rng(0).normal(0, 25, img.shape), 0, 255).astype(
        np.uint8
    )
    assert 0 < ssim(noisy, img, border=4) < 0.9
    with pytest.raises(ValueError, match="11x11"):
        ssim(img[:12, :12], img[:12, :12], border=2)


def test_errors_name_the_problem():
    img = textured(16, 16, 0)
    with pytest.raises(ValueError, match="shape"):
        psnr(img, img[:10])
    with pytest.raises(ValueError, match="uint8"):
        psnr(img, img.astype(np.float32))
    with pytest.raises(ValueError, match="RGB"):
        psnr(img[..., 0], img[..., 0])
