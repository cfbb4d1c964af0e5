"""Image quality metrics: PSNR and SSIM of RGB uint8 images (numpy/OpenCV only).

One home for the stages that score images: ``train-sr`` validation, ``fit-degradation``
validation, and ``eval`` (:mod:`redegkit.metrics.stats`, hence bake's calibration). It sits at the
package top, beside :mod:`redegkit.rng` and :mod:`redegkit.run`, rather than in ``sr/``:
PSNR is not an SR-stage concept, and under ``sr/`` the fit and eval stages would depend on the
SR stage's package for a numpy function.

Conventions (the defaults are the SR literature's, so numbers are comparable with ESRGAN,
Real-ESRGAN, BasicSR): PSNR and SSIM on the Y channel of ITU-R BT.601 in studio range (16-235,
:func:`rgb_to_y`) with a peak of 255, after cropping ``border`` pixels (usually the scale) from
every side. ``psnr(..., y=False)`` is the plain PSNR over the three RGB channels.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """RGB uint8 [..., H, W, 3] -> BT.601 studio-range luma (float64 [..., H, W], 16..235)."""
    if img.ndim < 3 or img.shape[-1] != 3:
        raise ValueError(f"expected RGB HxWx3, got {img.shape}")
    x = img.astype(np.float64)
    return 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0


def _crop_pair(a: np.ndarray, b: np.ndarray, border: int) -> tuple[np.ndarray, np.ndarray]:
    """Check two RGB uint8 images (or equal stacks of them) and crop ``border`` from H and W."""
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {a.dtype} and {b.dtype}")
    if a.ndim < 3 or a.shape[-1] != 3:
        raise ValueError(f"expected RGB HxWx3, got {a.shape}")
    if border > 0:
        h, w = a.shape[-3:-1]
        a, b = (
            a[..., border : h - border, border : w - border, :],
            b[..., border : h - border, border : w - border, :],
        )
    if a.shape[-3] <= 0 or a.shape[-2] <= 0:
        raise ValueError(f"image {a.shape[-3:-1]} too small for a border crop of {border}")
    return a, b


def psnr(a: np.ndarray, b: np.ndarray, *, y: bool = True, border: int = 0, equal: float = math.inf) -> float:
    """PSNR (dB, peak 255) between two RGB uint8 images HxWx3, or the mean over two equal stacks
    [N, H, W, 3] of the images' PSNRs.

    ``y``: on BT.601 studio-range luma (:func:`rgb_to_y`; the SR convention), else over R, G and B.
    ``border``: pixels cropped from every side first. ``equal``: the value of an image without any
    error (inf by default; a finite cap keeps a batch mean and JSON finite).
    """
    a, b = _crop_pair(a, b, border)
    if y:
        da, db = rgb_to_y(a), rgb_to_y(b)
        err = (da - db) ** 2
    else:
        err = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    per_image = err.reshape(-1, a.shape[-3] * a.shape[-2] * (1 if y else 3)).mean(1)
    vals = [equal if m == 0 else 10.0 * math.log10(255.0**2 / m) for m in per_image]
    return float(vals[0]) if len(vals) == 1 else float(np.mean(vals))


def _ssim_plane(a: np.ndarray, b: np.ndarray) -> float:
    # Wang et al. 2004: 11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, L 255, valid region.
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = cv2.getGaussianKernel(11, 1.5)
    win = k @ k.T

    def filt(x: np.ndarray) -> np.ndarray:
        return cv2.filter2D(x, -1, win)[5:-5, 5:-5]

    mu_a, mu_b = filt(a), filt(b)
    s_a = filt(a * a) - mu_a**2
    s_b = filt(b * b) - mu_b**2
    s_ab = filt(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * s_ab + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (s_a + s_b + c2)
    return float(np.mean(num / den))


def ssim(a: np.ndarray, b: np.ndarray, *, border: int = 0) -> float:
    """SSIM on Y between two RGB uint8 images HxWx3 (at least 11x11 after the border crop)."""
    if a.ndim != 3:
        raise ValueError(f"expected RGB HxWx3, got {a.shape}")
    a, b = _crop_pair(a, b, border)
    ya, yb = rgb_to_y(a), rgb_to_y(b)
    if min(ya.shape) < 11:
        raise ValueError(f"SSIM needs at least 11x11 pixels after cropping, got {ya.shape}")
    return _ssim_plane(ya, yb)
