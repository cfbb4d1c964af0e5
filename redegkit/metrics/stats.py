"""Degradation statistics: small, pure numpy/OpenCV measurements of what happened to a photo.

Every function takes RGB ``uint8`` HxWx3 numpy images (the project's edge format) and returns
plain floats, so results go straight into JSON. "Luma" here is full-range BT.601,
``Y = 0.299 R + 0.587 G + 0.114 B`` on the 0-255 scale (float64), so a noise level or a contrast
is in grey levels of the image itself. (PSNR/SSIM, :func:`psnr` and :func:`ssim`, are
:mod:`redegkit.metrics.quality`'s, on its studio-range Y, re-exported here.)

No-reference statistics (one image): :func:`noise_level`, :func:`blockiness`, :func:`sharpness`,
:func:`hf_power`, :func:`spectral_slope`, :func:`colour`, :func:`saturation`, :func:`contrast`.

Paired statistics (a degraded image against its HQ): :func:`paired_stats`, compared between
a candidate and the truth on the same crops by :func:`stats_distance` with the scales in
:data:`STAT_SCALES`. Every component is reported on its own, so a user sees *what* differs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from .quality import psnr, ssim  # re-exported: the package's PSNR/SSIM (Y, no border by default)

__all__ = [
    "PAIRED_KEYS",
    "STAT_SCALES",
    "blockiness",
    "colour",
    "contrast",
    "hf_power",
    "luma",
    "noise_level",
    "paired_stats",
    "psnr",
    "saturation",
    "sharpness",
    "spectral_slope",
    "ssim",
    "stats_distance",
]

_LUMA = np.array([0.299, 0.587, 0.114])
# The 3x3 "difference of Laplacians" of Immerkaer (1996): it cancels constant, linear and most
# quadratic image structure, and its response to white noise of std s has std 6 s.
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
# Fraction of the flattest pixels (by luma gradient) the noise estimate uses. Sobel and the
# Immerkaer mask are orthogonal filters, so for Gaussian noise the selection does not bias it.
_FLAT_FRACTION = 0.5
_BLOCK = 8  # the JPEG DCT block
_BLOCK_CLIP_PCT = 75.0
_BLOCK_CLIP_MIN = 2.0  # grey levels: never clip below this (flat images have a p75 near 0)
# Added to every phase's mean |difference| (grey levels), about uint8 rounding's own: a flat
# image then reads 0, and flat 8x8 blocks a finite value, instead of dividing by ~0.
_BLOCK_FLOOR = 0.25


def _check(img: np.ndarray, name: str = "image") -> None:
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        got = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
        raise ValueError(f"{name}: expected an RGB uint8 HxWx3 array, got {got}")
    if min(img.shape[:2]) < 8:
        raise ValueError(f"{name}: needs at least 8x8 pixels, got {img.shape[1]}x{img.shape[0]}")


def luma(img: np.ndarray) -> np.ndarray:
    """RGB uint8 HxWx3 -> full-range BT.601 luma, float64 HxW in 0..255."""
    _check(img)
    return img.astype(np.float64) @ _LUMA


# No-reference statistics ---------------------------------------------------------------------
def noise_level(img: np.ndarray) -> float:
    """Estimated std of additive noise, in grey levels (0-255 scale), averaged over R, G, B.

    Immerkaer's fast estimator made robust for textured images: the 3x3 difference-of-Laplacians
    response of each channel, taken only on the flattest half of the pixels (lowest luma Sobel
    magnitude, so edges and texture are masked out), and its median absolute value converted to
    a std (``median|r| / (0.6745 * 6)``). I.i.d. Gaussian noise of std s added to every channel
    reads s; a clean smooth image reads ~0. Image borders (1 px) are not used.
    """
    _check(img)
    x = img.astype(np.float64)
    y = x @ _LUMA
    gx = cv2.Sobel(y, cv2.CV_64F, 1, 0, ksize=3)
    gy = cv2.Sobel(y, cv2.CV_64F, 0, 1, ksize=3)
    grad = np.hypot(gx, gy)[1:-1, 1:-1]
    flat = grad <= np.quantile(grad, _FLAT_FRACTION)
    levels = []
    for c in range(3):
        r = cv2.filter2D(x[..., c], cv2.CV_64F, _IMMERKAER)[1:-1, 1:-1]
        levels.append(np.median(np.abs(r[flat])) / (0.6745 * 6.0))
    return float(np.mean(levels))


def _phase_blockiness(diff: np.ndarray) -> float:
    # diff: |Y[:, x+1] - Y[:, x]|, columns = boundaries. Boundary x sits between pixel x and x+1;
    # group by x mod 8 and compare the strongest phase with the other seven. Differences are
    # clipped at the image's 75th percentile first: a JPEG grid is many small steps, and without
    # the clip a few strong content edges that happen to share a phase read as blocking.
    diff = np.minimum(diff, max(float(np.percentile(diff, _BLOCK_CLIP_PCT)), _BLOCK_CLIP_MIN))
    n = diff.shape[1] - diff.shape[1] % _BLOCK
    if n < _BLOCK:
        return 0.0
    per_phase = diff[:, :n].reshape(diff.shape[0], n // _BLOCK, _BLOCK).mean(axis=(0, 1)) + _BLOCK_FLOOR
    k = int(np.argmax(per_phase))
    others = float(np.delete(per_phase, k).mean())
    return max(float(per_phase[k]) / others - 1.0, 0.0)


def blockiness(img: np.ndarray) -> float:
    """8x8 JPEG blockiness of luma, invariant to where the grid starts (crop phase).

    For columns: |horizontal differences|, each clipped at the image's 75th percentile (so that
    a few strong content edges do not count as a grid), averaged over each of the 8 boundary
    phases (x mod 8); the strongest phase divided by the mean of the other 7, minus 1. Likewise
    for rows; the two averaged, clipped at 0. A unitless ratio: 0.1 means one phase's edges are
    10% stronger than the rest. Clean 128-px photos read ~0.01-0.1 (content that happens to
    favour one phase: smaller images read higher), a JPEG at quality 50 ~0.1-0.4, at 20 ~0.3-0.9.
    """
    y = luma(img)
    cols = _phase_blockiness(np.abs(np.diff(y, axis=1)))
    rows = _phase_blockiness(np.abs(np.diff(y, axis=0)).T)
    return 0.5 * (cols + rows)


def sharpness(img: np.ndarray) -> float:
    """log10 of the variance of the 4-neighbour Laplacian of luma (+1e-6). Blur lowers it;
    noise raises it. A difference of 1 is a factor of 10 in Laplacian energy."""
    lap = cv2.Laplacian(luma(img), cv2.CV_64F, ksize=1, borderType=cv2.BORDER_REFLECT_101)
    return float(math.log10(float(lap.var()) + 1e-6))


def _power_spectrum(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hann-windowed, mean-removed luma power spectrum and each bin's radial frequency, with
    each axis in cycles/pixel (Nyquist 0.5)."""
    y = luma(img)
    h, w = y.shape
    win = np.outer(np.hanning(h), np.hanning(w))
    y = (y - y.mean()) * win
    power = np.abs(np.fft.fft2(y)) ** 2
    fy, fx = np.fft.fftfreq(h), np.fft.fftfreq(w)
    radius = np.hypot(fy[:, None], fx[None, :])
    return power, radius


def hf_power(img: np.ndarray) -> float:
    """log10 of the fraction of spectral power above half the Nyquist radius (0.25 cycles/px).

    Luma, mean removed, 2-D Hann window. Blur lowers it, noise and blocking raise it. -12 is the
    floor (a constant image)."""
    power, radius = _power_spectrum(img)
    total = float(power.sum())
    if total <= 0:
        return -12.0
    return float(math.log10(max(float(power[radius > 0.25].sum()) / total, 1e-12)))


def spectral_slope(img: np.ndarray, bins: int = 16) -> float:
    """Slope of log10 radial power against log10 frequency (a no-reference blur measure).

    Luma, mean removed, 2-D Hann window; the radial power is averaged in ``bins`` log-spaced
    rings from 2 cycles per image (the shorter side) to Nyquist, and a least-squares line is
    fit through the rings' (log f, log P), each ring weighted by the square root of its number
    of frequency bins (a ring's mean power is steadier the more bins it has). Natural photos
    read about -2.5 to -3.5; blur makes it steeper (more negative), white noise flattens it towards 0.
    """
    power, radius = _power_spectrum(img)
    lo = 2.0 / min(power.shape)
    edges = np.geomspace(lo, 0.5, bins + 1)
    xs, ys, counts = [], [], []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        ring = (radius >= a) & (radius < b)
        if ring.any():
            p = float(power[ring].mean())
            if p > 0:
                xs.append(math.log10(math.sqrt(a * b)))
                ys.append(math.log10(p))
                counts.append(float(ring.sum()))
    if len(xs) < 2:
        return 0.0
    # polyfit's w multiplies the residuals, so w = count**0.25 weights squares by sqrt(count).
    return float(np.polyfit(xs, ys, 1, w=np.asarray(counts) ** 0.25)[0])


def colour(img: np.ndarray) -> tuple[float, float, float]:
    """Mean of R, G and B in grey levels (0-255)."""
    _check(img)
    m = img.reshape(-1, 3).mean(axis=0, dtype=np.float64)
    return float(m[0]), float(m[1]), float(m[2])


def saturation(img: np.ndarray) -> float:
    """Mean HSV saturation, 0..1 (OpenCV's S = (max - min) / max per pixel, 0 where max is 0)."""
    _check(img)
    return float(cv2.cvtColor(img, cv2.COLOR_RGB2HSV)[..., 1].mean(dtype=np.float64) / 255.0)


def contrast(img: np.ndarray) -> float:
    """Standard deviation of luma, in grey levels (RMS contrast)."""
    return float(luma(img).std())


# Paired statistics ---------------------------------------------------------------------------
PAIRED_KEYS = ("color", "sharpness", "noise", "blockiness", "hf_power")

# A |candidate - truth| difference equal to the scale is "clearly visible"; distances are in
# these units, so 1.0 on any statistic means the same thing: a difference a viewer would see.
STAT_SCALES: dict[str, float] = {
    # Grey levels, L2 over the 3 channel shifts. ~8 levels of cast on a mid-grey is a
    # noticeable tint (about 3 CIELAB dE, over the ~2 dE that is just noticeable side by side).
    "color": 8.0,
    # log10 Laplacian-energy ratio. On the 128-px example photos one Gaussian blur of sigma
    # 0.5 px reads -0.35..-0.42 and sigma 0.4 px -0.13..-0.15: 0.25 sits at the blur a viewer
    # starts to notice side by side.
    "sharpness": 0.25,
    # Grey levels of noise std. Noise of 1 level is invisible, 2 levels shows in flat regions;
    # the estimator reads 0.5-1.3 on clean, non-grassy photos, so smaller steps are not signal.
    "noise": 2.0,
    # Blockiness ratio. Clean 128-px photos read 0.02-0.05, JPEG quality 75 reads 0.08-0.22,
    # quality 50 0.16-0.34: 0.05 is the step from "no grid" to "a grid you can find".
    "blockiness": 0.05,
    # log10 of the HF power fraction; blur of sigma 0.5 px moves it by -0.31..-0.35, so the
    # same reasoning (and the same number) as sharpness.
    "hf_power": 0.25,
}


def paired_stats(hq: np.ndarray, lq: np.ndarray) -> dict[str, Any]:
    """Statistics of a degraded image ``lq`` against its clean ``hq`` (RGB uint8 HxWx3 both).

    If ``lq`` is smaller (an SR pair), ``hq`` is first area-downsampled to ``lq``'s size, so the
    comparison is at the LQ resolution. Keys (:data:`PAIRED_KEYS`):

    - ``color``: [dR, dG, dB], per-channel mean shift lq - hq, in grey levels;
    - ``sharpness``: sharpness(lq) - sharpness(hq), a log10 ratio (< 0: blurred);
    - ``noise``: noise_level(lq), grey levels;
    - ``blockiness``: blockiness(lq);
    - ``hf_power``: hf_power(lq) - hf_power(hq), a log10 ratio.
    """
    _check(hq, "hq")
    _check(lq, "lq")
    (h, w), (lh, lw) = hq.shape[:2], lq.shape[:2]
    if (lh, lw) != (h, w):
        if lh > h or lw > w:
            raise ValueError(f"lq {lw}x{lh} is larger than hq {w}x{h}; expected the same size or smaller")
        hq = cv2.resize(hq, (lw, lh), interpolation=cv2.INTER_AREA)
    c_lq, c_hq = colour(lq), colour(hq)
    return {
        "color": [a - b for a, b in zip(c_lq, c_hq, strict=True)],
        "sharpness": sharpness(lq) - sharpness(hq),
        "noise": noise_level(lq),
        "blockiness": blockiness(lq),
        "hf_power": hf_power(lq) - hf_power(hq),
    }


def stats_distance(cand: Sequence[dict[str, Any]], truth: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Distance between a candidate's and the truth's :func:`paired_stats` on the SAME crops.

    ``cand[i]`` and ``truth[i]`` must describe the same crop. Per statistic: the mean over crops
    of ``|cand - truth| / STAT_SCALES[key]`` (``color``: the Euclidean norm of the 3-vector
    difference over the scale). ``overall`` is the mean of the five. Identical inputs give
    exactly 0.
    """
    if len(cand) != len(truth):
        raise ValueError(f"stats_distance: {len(cand)} candidate crops vs {len(truth)} truth crops")
    if not cand:
        raise ValueError("stats_distance: no crops")
    out: dict[str, float] = {}
    for key in PAIRED_KEYS:
        total = 0.0
        for c, t in zip(cand, truth, strict=True):
            if key == "color":
                d = float(np.linalg.norm(np.asarray(c[key], np.float64) - np.asarray(t[key], np.float64)))
            else:
                d = abs(float(c[key]) - float(t[key]))
            total += d / STAT_SCALES[key]
        out[key] = total / len(cand)
    out["overall"] = float(np.mean([out[k] for k in PAIRED_KEYS]))
    return out
