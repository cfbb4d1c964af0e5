"""SR quality metrics as the literature reports them, and validation preview grids.

PSNR and SSIM are computed on the Y channel (ITU-R BT.601, studio range 16-235) of uint8
images, after cropping ``border`` pixels (the scale) from every side: the convention of
ESRGAN, Real-ESRGAN and most SR papers, so numbers are comparable.
"""

from __future__ import annotations

import cv2
import numpy as np


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """RGB uint8 HxWx3 -> BT.601 luma (float64 HxW, range 16..235)."""
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected RGB HxWx3, got {img.shape}")
    x = img.astype(np.float64)
    return 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0


def _prep(a: np.ndarray, b: np.ndarray, border: int) -> tuple[np.ndarray, np.ndarray]:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {a.dtype} and {b.dtype}")
    ya, yb = rgb_to_y(a), rgb_to_y(b)
    if border > 0:
        ya, yb = ya[border:-border, border:-border], yb[border:-border, border:-border]
    if ya.size == 0:
        raise ValueError(f"image {a.shape[:2]} too small for a border crop of {border}")
    return ya, yb


def psnr_y(sr: np.ndarray, hq: np.ndarray, border: int = 0) -> float:
    """PSNR (dB) on Y between two RGB uint8 images; ``border`` pixels cropped. inf if equal."""
    ya, yb = _prep(sr, hq, border)
    mse = float(np.mean((ya - yb) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


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


def ssim_y(sr: np.ndarray, hq: np.ndarray, border: int = 0) -> float:
    """SSIM on Y between two RGB uint8 images (at least 11x11 after the border crop)."""
    ya, yb = _prep(sr, hq, border)
    if min(ya.shape) < 11:
        raise ValueError(f"SSIM needs at least 11x11 pixels after cropping, got {ya.shape}")
    return _ssim_plane(ya, yb)


def preview_grid(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]], max_side: int = 256) -> np.ndarray:
    """One RGB uint8 image with a row per sample: LQ (nearest-upscaled) | SR | HQ (or blank).

    Each row is centre-cropped to at most ``max_side`` SR pixels so that grids stay small.
    """
    if not rows:
        raise ValueError("preview_grid: no rows")
    tiles = []
    for lq, sr, hq in rows:
        h, w = sr.shape[:2]
        up = cv2.resize(lq, (w, h), interpolation=cv2.INTER_NEAREST)
        hq = hq if hq is not None else np.zeros_like(sr)
        ch, cw = min(h, max_side), min(w, max_side)
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        crop = [im[y0 : y0 + ch, x0 : x0 + cw] for im in (up, sr, hq)]
        tiles.append(np.concatenate(crop, axis=1))
    width = max(t.shape[1] for t in tiles)
    tiles = [np.pad(t, ((0, 2), (0, width - t.shape[1]), (0, 0))) for t in tiles]  # 2-px black separators
    return np.ascontiguousarray(np.concatenate(tiles, axis=0))
