"""Residual calibration at bake time: what the generator leaves out, measured on each pair.

A small generator fitted for minutes reproduces the structure of a degradation (blur, resampling,
halos) but not all of it. Three parts are out of its reach by construction or by capacity:

- **colour**: a tiny generator drifts in hue (a warm cast comes out pink);
- **noise**: the generator is deterministic, so the grain of the real LQ is averaged away;
- **8x8 JPEG blocks**: a convolutional generator is translation-equivariant and its input (the HQ)
  carries no block grid, so it cannot place block edges.

So ``bake`` measures, on each face pair, the real LQ against the generator's own output for that
pair's embedding, and stores per embedding:

- ``filter`` [2, 7, 7]: ``lq ~ filter[0] * hq + filter[1] * generator`` (least squares, ridge
  towards the generator's output, shared by the channels): the pair's linear degradation (blur,
  resampling, halos) measured directly, and the share of the generator's nonlinear output;
- ``color`` [3, 4]: the affine colour map (least squares, ridge towards identity) from the HQ's
  low frequencies (a Gaussian of radius ``COLOR_SIGMA``) to the real LQ's, on the [-1, 1] scale;
  synthesis takes the output's low frequencies from the HQ through it, its detail from the filters;
- ``noise_cov`` [3, 3]: the channel covariance (on the [-1, 1] scale) of the noise the generator's
  output lacks, sized so that the no-reference noise level of output + noise equals the real LQ's
  (:func:`redegkit.metrics.stats.noise_level`); zero when the LQ is no noisier than the generator;
- ``noise_corr``: the Gaussian radius (pixels) that makes white noise as spatially correlated as
  the residual (0: white);
- ``jpeg``: a JPEG quality whose 8x8 blockiness matches the real LQ's
  (:func:`redegkit.metrics.stats.blockiness`), or 0 when the LQ shows no more blocking than the
  generator's output. With a JPEG step the filters are refitted once, to the LQ plus what that
  JPEG removes: the LQ they were first fitted to carries the JPEG's blur already.

``synthesize --bank`` applies them after the generator (colour, then noise, then JPEG), so the
noise and compression in synthesized pairs come from the user's photos, not from a hand-set
``--noise``. Every number is measured on the pair the embedding came from; nothing here sees the
images that are later synthesized.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
import torch

from ..degrade.ops import jpeg
from ..metrics.stats import blockiness, noise_level
from .operators import apply_filters, color_map, hash_normal, lowpass, recolor, shape_noise

CALIBRATION_KEYS = ("filter", "color", "noise_cov", "noise_corr", "jpeg")
FILTER_RADIUS = 3  # 7x7 filters
JPEG_QUALITIES = (95, 90, 85, 80, 75, 70, 60, 50, 40, 35, 30, 25, 20, 15, 10)
NOISE_FLOOR = 0.6  # grey levels: a deficit below this is estimator jitter, not noise
BLOCK_MARGIN = 0.03  # blockiness above the generator's by less than this is not a grid
COLOR_MIN_GAIN = 0.1  # a colour map must lower the squared error by 10 % to be kept,
# and the HQ's colours must be off the LQ's by this many grey levels (RMS); JPEG q25 moves them by 1.5
COLOR_MIN_RMS = 3.0
_RIDGE = 1e-3  # per pixel: pulls the colour map towards identity where the pair says little
_CORR_SIGMAS = (0.0, 0.3, 0.45, 0.6, 0.8, 1.0, 1.3, 1.7, 2.2)


def identity_calibration(n: int) -> dict[str, torch.Tensor]:
    """Calibration of ``n`` embeddings that changes nothing (identity filters, no colour step, no
    noise, no JPEG): what a merged format-1 bank's embeddings get."""
    color = torch.zeros(n, 3, 4)  # all zero: no colour step at all (the generator's own colours)
    k = 2 * FILTER_RADIUS + 1
    filt = torch.zeros(n, 2, k, k)
    filt[:, 1, FILTER_RADIUS, FILTER_RADIUS] = 1.0
    return {
        "filter": filt,
        "color": color,
        "noise_cov": torch.zeros(n, 3, 3),
        "noise_corr": torch.zeros(n),
        "jpeg": torch.zeros(n, dtype=torch.int64),
    }


# ------------------------------------------------------------------------------------------------
# Measuring a pair


def _to_u8(x: np.ndarray) -> np.ndarray:
    """[-1, 1] float HxWx3 -> uint8, as :func:`redegkit.io.images.from_tensor` rounds."""
    return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def fit_filters(hq: np.ndarray, gen: np.ndarray, lq: np.ndarray, radius: int = FILTER_RADIUS) -> np.ndarray:
    """Two (2r+1)^2 filters [2, k, k], shared by the channels, with ``lq ~ k0 * hq + k1 * gen``
    (reflect borders; all on the [-1, 1] scale), by ridge least squares towards (0, identity) on
    every other pixel. ``k0`` is the pair's linear degradation estimated from the HQ (blur,
    resampling, sharpening halos: what a small generator gets wrong most), ``k1`` how much of the
    generator's own output is kept (its nonlinear part: compression, texture loss)."""
    k = 2 * radius + 1
    h, w = gen.shape[:2]

    def columns(x: np.ndarray) -> list[np.ndarray]:
        pad = np.pad(x.astype(np.float32), ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
        return [pad[dy : dy + h : 2, dx : dx + w : 2].reshape(-1) for dy in range(k) for dx in range(k)]

    a = np.stack(columns(hq) + columns(gen), 1).astype(np.float64)  # [P*3, 2*k*k]
    y = lq[::2, ::2].reshape(-1).astype(np.float64)
    n = 2 * k * k
    lam = _RIDGE * len(y)
    prior = np.zeros(n)
    prior[k * k + (k * k) // 2] = 1.0  # the generator's output as it is
    sol = np.linalg.solve(a.T @ a + lam * np.eye(n), a.T @ y + lam * prior)
    return sol.reshape(2, k, k).astype(np.float32)


def _t(x: np.ndarray) -> torch.Tensor:
    """HxWx3 float -> [1, 3, H, W] float32 (the operators' layout)."""
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).permute(2, 0, 1)[None]


def _hwc(t: torch.Tensor) -> np.ndarray:
    return t[0].permute(1, 2, 0).numpy()


def fit_color(gen: np.ndarray, lq: np.ndarray) -> np.ndarray:
    """Affine colour map [3, 4] with ``lq ~ M[:, :3] @ gen + M[:, 3]`` per pixel ([-1, 1] scale),
    by ridge least squares towards the identity map."""
    x = gen.reshape(-1, 3).astype(np.float64)
    y = lq.reshape(-1, 3).astype(np.float64)
    a = np.concatenate([x, np.ones((len(x), 1))], 1)
    lam = _RIDGE * len(x)
    m0 = np.concatenate([np.eye(3), np.zeros((1, 3))], 0)  # [4, 3]
    m = np.linalg.solve(a.T @ a + lam * np.eye(4), a.T @ y + lam * m0)
    return m.T.astype(np.float32)


def _highpass(x: np.ndarray) -> np.ndarray:
    return x - cv2.GaussianBlur(x, (0, 0), 1.5, borderType=cv2.BORDER_REFLECT_101)


def _flat_mask(hq: np.ndarray) -> np.ndarray:
    """The flatter half of the pixels (by the HQ's smoothed luma gradient): where a residual is
    noise rather than a misplaced edge."""
    y = cv2.cvtColor(hq, cv2.COLOR_RGB2GRAY).astype(np.float32)
    g = cv2.GaussianBlur(
        np.abs(cv2.Sobel(y, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(y, cv2.CV_32F, 0, 1)), (0, 0), 2
    )
    return g <= np.median(g)


def _lag1(x: np.ndarray, mask: np.ndarray) -> float:
    """Mean lag-1 autocorrelation (x and y, all channels) of a zero-mean field over a mask."""
    num = den = 0.0
    for a, b, m in ((x[:, 1:], x[:, :-1], mask[:, 1:] & mask[:, :-1]), (x[1:], x[:-1], mask[1:] & mask[:-1])):
        num += float((a[m] * b[m]).sum())
        den += 0.5 * float((a[m] ** 2).sum() + (b[m] ** 2).sum())
    return num / max(den, 1e-12)


@lru_cache(maxsize=1)
def _corr_table() -> tuple[np.ndarray, np.ndarray]:
    """lag-1 autocorrelation of the high-passed field for each radius in _CORR_SIGMAS (simulated
    once on a 128 px field, so measuring and synthesizing share one definition)."""
    rhos = []
    white = _white(12345, (3, 128, 128))
    mask = np.ones((128, 128), bool)
    for s in _CORR_SIGMAS:
        n = shape_noise(white, torch.eye(3), s)[0].permute(1, 2, 0).numpy().astype(np.float32)
        rhos.append(_lag1(_highpass(n), mask))
    return np.asarray(_CORR_SIGMAS), np.asarray(rhos)


def corr_radius(rho: float) -> float:
    """The Gaussian radius whose high-passed white noise has lag-1 autocorrelation ``rho``."""
    sig, rhos = _corr_table()
    if rho <= rhos[0]:
        return 0.0
    return float(np.interp(rho, rhos, sig))


def _white(seed: int, shape: tuple[int, int, int]) -> torch.Tensor:
    return hash_normal([seed], shape)


def _noisy(g1: np.ndarray, cov: np.ndarray, corr: float, seed: int) -> np.ndarray:
    h, w = g1.shape[:2]
    n = shape_noise(_white(seed, (3, h, w)), torch.from_numpy(cov), corr)[0].permute(1, 2, 0).numpy()
    return g1 + n


def _refit_for_jpeg(
    hqf: np.ndarray, gen: np.ndarray, lqf: np.ndarray, g1: np.ndarray, m: np.ndarray, q: int
) -> tuple[np.ndarray, np.ndarray]:
    """Filters refitted to ``lq + (g1 - JPEG_q(g1))`` and the recoloured output they give."""
    cur = _to_u8(g1)
    removed = (cur.astype(np.float32) - jpeg(cur, q).astype(np.float32)) / 127.5
    kern = fit_filters(hqf, gen, lqf + removed)
    gf = _hwc(apply_filters(_t(hqf), _t(gen), torch.from_numpy(kern)[None]))
    return kern, _hwc(recolor(_t(gf), _t(hqf), torch.from_numpy(m)[None]))


def calibrate_pair(hq: np.ndarray, lq: np.ndarray, gen: np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """Measure one pair. ``hq``, ``lq``: RGB uint8 HxWx3; ``gen``: the generator's output for the
    pair's embedding on ``hq``, float HxWx3 in [-1, 1]. Returns ``{color [3,4], noise_cov [3,3],
    noise_corr, jpeg}`` as numpy / Python numbers (see the module doc) plus diagnostics."""
    lqf = lq.astype(np.float32) / 127.5 - 1.0
    hqf = hq.astype(np.float32) / 127.5 - 1.0
    kern = fit_filters(hqf, gen, lqf)
    # the calibration is applied with synthesis's own operators (redegkit.bank.operators)
    gf = _hwc(apply_filters(_t(hqf), _t(gen), torch.from_numpy(kern)[None]))
    # Colour lives in the low frequencies, and those come from the HQ through the pair's colour
    # map: a small generator's own low frequencies drift in hue. The map is kept only where it
    # explains something: with the LQ's colours within COLOR_MIN_RMS of the HQ's, or a map that
    # lowers the low-pass error by less than COLOR_MIN_GAIN, it would be fitting compression or
    # noise residue, and would tint images of other palettes for nothing.
    lp_hq, lp_lq = _hwc(lowpass(_t(hqf))), _hwc(lowpass(_t(lqf)))
    m = fit_color(lp_hq, lp_lq)
    err_id = float(((lp_lq - lp_hq) ** 2).mean())
    err_m = float(((lp_lq - _hwc(color_map(_t(lp_hq), torch.from_numpy(m)[None]))) ** 2).mean())
    if err_id < (COLOR_MIN_RMS / 127.5) ** 2 or err_m > (1 - COLOR_MIN_GAIN) * err_id:
        m = np.concatenate([np.eye(3), np.zeros((3, 1))], 1).astype(np.float32)
    g1 = _hwc(recolor(_t(gf), _t(hqf), torch.from_numpy(m)[None]))
    sig_lq = noise_level(lq)
    sig_g = noise_level(_to_u8(g1))
    cov = np.zeros((3, 3), np.float32)
    corr = 0.0
    deficit = sig_lq**2 - sig_g**2
    if deficit > NOISE_FLOOR**2:
        mask = _flat_mask(hq)
        r = _highpass((lqf - g1).astype(np.float32))
        rm = r[mask].astype(np.float64)
        c = np.cov(rm.T) if len(rm) > 8 else np.eye(3)
        c = c / max(np.trace(c) / 3, 1e-12)  # a shape only: its size is set below
        corr = corr_radius(_lag1(r, mask))
        cov = (c * (math.sqrt(deficit) / 127.5) ** 2).astype(np.float32)
    q = 0
    cur = _to_u8(_noisy(g1, cov, corr, seed)) if cov.any() else _to_u8(g1)
    b_lq = blockiness(lq)
    if b_lq > blockiness(cur) + BLOCK_MARGIN:
        q = min(JPEG_QUALITIES, key=lambda qq: abs(blockiness(jpeg(cur, qq)) - b_lq))
    if q:
        # The filters were fitted to an LQ that carries this JPEG's blur already, and synthesis
        # applies the JPEG again on top: refit them once to the LQ plus what the JPEG takes out of
        # the current output, so that JPEG(output), not the output, has the LQ's sharpness.
        kern, g1 = _refit_for_jpeg(hqf, gen, lqf, g1, m, q)
        # JPEG shifts colour means too (chroma subsampling, clipping), and the colour map was fitted
        # before it: move the map's offsets so the finished output's channel means are the LQ's.
        for _ in range(2):
            out = jpeg(_to_u8(_noisy(g1, cov, corr, seed)) if cov.any() else _to_u8(g1), q)
            d = (
                lq.reshape(-1, 3).astype(np.float64).mean(0) - out.reshape(-1, 3).astype(np.float64).mean(0)
            ) / 127.5
            m = m.copy()
            m[:, 3] += d.astype(np.float32)
            g1 = g1 + d.astype(np.float32)
    if cov.any():
        # Noise level of the finished output (JPEG smooths noise): rescale the covariance so the
        # estimate matches the real LQ's. Two multiplicative corrections, no more: the estimate
        # reads clipped and textured regions too, so chasing it exactly on one face overshoots
        # the field on other images (measured on the suite's sensor-noise-blur).
        for _ in range(2):
            out = _to_u8(_noisy(g1, cov, corr, seed))
            if q:
                out = jpeg(out, q)
            got = noise_level(out) ** 2 - sig_g**2
            if got <= 1e-6 or abs(got / deficit - 1) < 0.03:
                break
            cov = (cov * min(4.0, max(0.25, deficit / got))).astype(np.float32)
    return {
        "filter": kern,
        "color": m,
        "noise_cov": cov,
        "noise_corr": float(corr),
        "jpeg": int(q),
        "diag": {"noise_lq": round(sig_lq, 4), "noise_gen": round(sig_g, 4), "blockiness_lq": round(b_lq, 4)},
    }


def stack_calibrations(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Per-embedding calibration dicts -> the bank's tensors (``color`` [N,3,4], ``noise_cov``
    [N,3,3], ``noise_corr`` [N], ``jpeg`` [N] int64)."""
    return {
        "filter": torch.from_numpy(np.stack([np.asarray(c["filter"], np.float32) for c in items])),
        "color": torch.from_numpy(np.stack([np.asarray(c["color"], np.float32) for c in items])),
        "noise_cov": torch.from_numpy(np.stack([np.asarray(c["noise_cov"], np.float32) for c in items])),
        "noise_corr": torch.tensor([float(c["noise_corr"]) for c in items], dtype=torch.float32),
        "jpeg": torch.tensor([int(c["jpeg"]) for c in items], dtype=torch.int64),
    }
