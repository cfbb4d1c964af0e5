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
- ``noise_psd`` [PSD_BINS, 3, 3]: the noise the generator's output lacks, as its cross-spectral
  density in radial frequency bands (Welch's estimate of ``lq - output`` over the flattest 16 px
  patches of the face), corrected band by band so that the *finished* output (noise, rounding,
  the JPEG step below) has the LQ's spectrum: the noise goes in where the camera's did, before the
  JPEG, and the JPEG shapes it. Measured where the LQ reads noisier than the generator's output
  (:func:`redegkit.metrics.stats.noise_level`), or, under a strong JPEG that quantises the
  finest band away, where the LQ's two top bands carry NOISE_TOP_RATIO times the power the clean
  output's JPEG leaves there; zero otherwise;
- ``noise_cov`` [3, 3]: that field's channel covariance (for reports); ``noise_corr``: 0. Banks
  baked before ``noise_psd`` hold a covariance and a Gaussian correlation radius instead, and
  synthesis applies those as it did;
- ``jpeg``: the JPEG quality whose quantisation table the LQ's 8x8 luma DCT coefficients carry
  (:func:`redegkit.metrics.jpeg_trace.estimate_quality`), or 0 when they carry none (never
  JPEG'd, or a JPEG whose grid the face alignment resampled away). With a JPEG step the filters
  are refitted once, to the LQ plus what that JPEG removes: the LQ they were first fitted to
  carries the JPEG's blur already.

``synthesize --bank`` applies them after the generator (colour, then noise, then JPEG), so the
noise and compression in synthesized pairs come from the user's photos, not from a hand-set
``--noise``. Every number is measured on the pair the embedding came from; nothing here sees the
images that are later synthesized.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import cv2
import numpy as np
import torch

from ..degrade.ops import jpeg
from ..metrics.jpeg_trace import estimate_quality
from ..metrics.stats import noise_level
from .operators import (
    PSD_BINS,
    apply_filters,
    color_map,
    hash_normal,
    lowpass,
    psd_band,
    recolor,
    spectral_noise,
)

CALIBRATION_KEYS = ("filter", "color", "noise_cov", "noise_corr", "noise_psd", "jpeg")
FILTER_RADIUS = 3  # 7x7 filters
NOISE_FLOOR = 0.6  # grey levels: a deficit below this is estimator jitter, not noise
COLOR_MIN_GAIN = 0.1  # a colour map must lower the squared error by 10 % to be kept,
# and the HQ's colours must be off the LQ's by this many grey levels (RMS); JPEG q25 moves them by 1.5
COLOR_MIN_RMS = 3.0
_RIDGE = 1e-3  # per pixel: pulls the colour map towards identity where the pair says little
NOISE_TOP_RATIO = 1.4  # see calibrate_pair: the LQ's top two bands over a clean JPEG's
MIN_PATCHES = 8  # fewer flat patches than this: no noise spectrum is measured
# band-by-band corrections of the noise spectrum under a JPEG (the JPEG's dead zone makes the
# output's power grow slower than the input's: three rounds stopped 13-23 % short at q35)
MATCH_ROUNDS = 6


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
        "noise_psd": torch.zeros(n, PSD_BINS, 3, 3),
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


PSD_PATCH = 16  # Welch patches (pixels) of the noise spectrum, half-overlapping
PSD_FLAT = 0.3  # the flattest share of the patches (by the HQ's gradient) is where noise is read


def flat_patches(hq: np.ndarray, lq: np.ndarray) -> np.ndarray:
    """Top-left corners [P, 2] of the half-overlapping PSD_PATCH patches where a residual is noise:
    the flattest PSD_FLAT of them by the HQ's luma gradient, none with clipped LQ pixels (clipping
    removes noise)."""
    y = cv2.cvtColor(hq, cv2.COLOR_RGB2GRAY).astype(np.float32)
    g = np.abs(cv2.Sobel(y, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(y, cv2.CV_32F, 0, 1))
    clip: np.ndarray = np.asarray(((lq <= 1) | (lq >= 254)).any(-1))
    h, w = y.shape
    st = PSD_PATCH // 2
    corners = np.array(
        [(i, j) for i in range(0, h - PSD_PATCH + 1, st) for j in range(0, w - PSD_PATCH + 1, st)]
    )
    if not len(corners):
        return corners.reshape(0, 2)
    grad = np.array([g[i : i + PSD_PATCH, j : j + PSD_PATCH].mean() for i, j in corners])
    clipped = np.array([clip[i : i + PSD_PATCH, j : j + PSD_PATCH].any() for i, j in corners])
    keep = ~clipped & (grad <= np.quantile(grad, PSD_FLAT))
    return corners[keep]


@lru_cache(maxsize=1)
def _welch_bands() -> tuple[np.ndarray, np.ndarray]:
    """The Hann window [k, k] and each DFT frequency's band, the nearest centre (-1: DC, left out)."""
    win = np.outer(np.hanning(PSD_PATCH + 2)[1:-1], np.hanning(PSD_PATCH + 2)[1:-1])
    f = np.fft.fftfreq(PSD_PATCH)
    band = np.clip(np.round(psd_band(np.hypot(f[:, None], f[None, :]))), 0, PSD_BINS - 1).astype(int)
    band[0, 0] = -1
    return win, band


def cross_spectrum(r: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Welch estimate of the 3x3 cross-spectral density of a residual HxWx3 (float, any scale) over
    the patches at ``corners``, averaged within each radial band: [PSD_BINS, 3, 3], on the scale
    where white noise of variance v reads v in every band (what :func:`spectral_noise` takes).
    Bands 1-5 read a field of :func:`spectral_noise` back within 3 %; the end bands carry the 16 px
    window's leakage (next to DC about -10 %, in the corners up to +40 % under a steep slope),
    which bake's matching cancels: it compares its target and its synthesized output through this
    same estimator."""
    win, band = _welch_bands()
    k = PSD_PATCH
    ar = np.arange(k)
    rows, cols = corners[:, 0, None, None] + ar[:, None], corners[:, 1, None, None] + ar[None, :]
    p = r[rows, cols].astype(np.float64)  # [P, k, k, 3]
    p = (p - p.mean((1, 2), keepdims=True)) * win[None, :, :, None]
    x = np.fft.fft2(p, axes=(1, 2))
    c = np.einsum("pyxc,pyxd->yxcd", x, x.conj()).real / (len(p) * (win**2).sum())
    return np.stack([c[band == b].mean(0) for b in range(PSD_BINS)])


@lru_cache(maxsize=2)
def _white(seed: int, shape: tuple[int, int, int]) -> torch.Tensor:
    """The pair's white noise (one draw per pair: every matching round reuses it; read-only)."""
    return hash_normal([seed], shape)


def _field(psd: np.ndarray, seed: int, h: int, w: int) -> np.ndarray:
    """The calibrated noise HxWx3 of spectrum ``psd`` (synthesis's own :func:`spectral_noise`)."""
    return _hwc(spectral_noise(_white(seed, (3, h, w)), torch.from_numpy(psd)[None]))


def _finished(g1: np.ndarray, psd: np.ndarray | None, q: int, seed: int) -> np.ndarray:
    """What synthesis makes of the calibrated output ``g1``: plus the noise, rounded, JPEG'd."""
    out = _to_u8(g1 if psd is None else g1 + _field(psd, seed, *g1.shape[:2]))
    return jpeg(out, q) if q else out


def _match_spectrum(g1: np.ndarray, target: np.ndarray, corners: np.ndarray, q: int, seed: int) -> np.ndarray:
    """The noise spectrum [PSD_BINS, 3, 3] that the LQ has beyond ``g1`` (``target``: the spectrum
    of ``lq - g1``), corrected band by band (MATCH_ROUNDS times at most) so that the finished
    output (noise, rounding, JPEG ``q``: the JPEG removes part of the noise's high band, as the
    camera's did) has it, not just the noise. (Counting only the power beyond the clean output's
    own JPEG residue, ``JPEG_q(g1) - g1``, was tried and measured no better on the suite:
    strong-combo's noise ratio 1.08 -> 1.17.)"""
    psd = target.copy()
    for _ in range(MATCH_ROUNDS):
        got = cross_spectrum(_finished(g1, psd, q, seed) / 127.5 - 1.0 - g1, corners)
        ratio = np.trace(target, axis1=1, axis2=2) / np.maximum(np.trace(got, axis1=1, axis2=2), 1e-12)
        if np.all(np.abs(ratio - 1) < 0.03):
            break
        psd = psd * np.clip(ratio, 0.25, 4.0)[:, None, None]
    return psd


def _top_band_ratio(target: np.ndarray, clean: np.ndarray) -> float:
    """Power of ``lq - g1`` (spectrum ``target``) over that of ``JPEG_q(g1) - g1`` (``clean``) in the
    two highest bands."""
    t, c = np.trace(target, axis1=1, axis2=2), np.trace(clean, axis1=1, axis2=2)
    return float(t[-2:].sum() / max(c[-2:].sum(), 1e-12))


def _refit_for_jpeg(
    hqf: np.ndarray, gen: np.ndarray, lqf: np.ndarray, g1: np.ndarray, m: np.ndarray, q: int
) -> tuple[np.ndarray, np.ndarray]:
    """Filters refitted to ``lq + (g1 - JPEG_q(g1))`` and the recoloured output they give."""
    cur = _to_u8(g1)
    removed = (cur.astype(np.float32) - jpeg(cur, q).astype(np.float32)) / 127.5
    kern = fit_filters(hqf, gen, lqf + removed)
    gf = _hwc(apply_filters(_t(hqf), _t(gen), torch.from_numpy(kern)[None]))
    return kern, _hwc(recolor(_t(gf), _t(hqf), torch.from_numpy(m)[None]))


def _match_means(
    lq: np.ndarray, g1: np.ndarray, m: np.ndarray, q: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """JPEG shifts colour means too (chroma subsampling, clipping), and the colour map was fitted
    before it: move the map's offsets (and ``g1``) so the finished output's channel means are the
    LQ's."""
    for _ in range(2):
        out = _finished(g1, None, q, seed)
        d = (
            lq.reshape(-1, 3).astype(np.float64).mean(0) - out.reshape(-1, 3).astype(np.float64).mean(0)
        ) / 127.5
        m = m.copy()
        m[:, 3] += d.astype(np.float32)
        g1 = g1 + d.astype(np.float32)
    return m, g1


def _color(hqf: np.ndarray, lqf: np.ndarray) -> np.ndarray:
    """The pair's colour map [3, 4] (identity where it explains too little; see calibrate_pair)."""
    lp_hq, lp_lq = _hwc(lowpass(_t(hqf))), _hwc(lowpass(_t(lqf)))
    m = fit_color(lp_hq, lp_lq)
    err_id = float(((lp_lq - lp_hq) ** 2).mean())
    err_m = float(((lp_lq - _hwc(color_map(_t(lp_hq), torch.from_numpy(m)[None]))) ** 2).mean())
    if err_id < (COLOR_MIN_RMS / 127.5) ** 2 or err_m > (1 - COLOR_MIN_GAIN) * err_id:
        m = np.concatenate([np.eye(3), np.zeros((3, 1))], 1).astype(np.float32)
    return m


def calibrate_pair(hq: np.ndarray, lq: np.ndarray, gen: np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """Measure one pair. ``hq``, ``lq``: RGB uint8 HxWx3; ``gen``: the generator's output for the
    pair's embedding on ``hq``, float HxWx3 in [-1, 1]. Returns ``{filter [2,k,k], color [3,4],
    noise_cov [3,3], noise_corr, noise_psd [PSD_BINS,3,3], jpeg}`` as numpy / Python numbers (see
    the module doc) plus diagnostics."""
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
    m = _color(hqf, lqf)
    g1 = _hwc(recolor(_t(gf), _t(hqf), torch.from_numpy(m)[None]))
    trace = estimate_quality(lq)
    q = trace.quality if trace is not None else 0
    if q:
        # The filters were fitted to an LQ that carries this JPEG's blur already, and synthesis
        # applies the JPEG again on top: refit them once to the LQ plus what the JPEG takes out of
        # the current output, so that JPEG(output), not the output, has the LQ's sharpness.
        kern, g1 = _refit_for_jpeg(hqf, gen, lqf, g1, m, q)
        m, g1 = _match_means(lq, g1, m, q, seed)
    clean = _finished(g1, None, q, seed)  # the finished output without noise
    sig_lq = noise_level(lq)
    sig_g = noise_level(clean)
    psd: np.ndarray | None = None
    corners = flat_patches(hq, lq)
    top = 0.0
    if len(corners) >= MIN_PATCHES:
        target = cross_spectrum(lqf - g1, corners)
        # Noise under a strong JPEG: the finest band the noise estimator reads is quantised away,
        # but the LQ's top two bands still carry more than the JPEG of the clean output does. On
        # the suite's faces: strong-combo's 24 (noise sigma 6, q35) read 1.42-10.0, jpeg-only's
        # 24 (no noise, q25) 0.58-1.37: a narrow margin, measured on two faces only.
        if q:
            top = _top_band_ratio(target, cross_spectrum(clean / 127.5 - 1.0 - g1, corners))
        if sig_lq**2 - sig_g**2 > NOISE_FLOOR**2 or top > NOISE_TOP_RATIO:
            psd = _match_spectrum(g1, target, corners, q, seed)
    cov = np.zeros((3, 3), np.float32)
    if psd is not None:
        cov = np.cov(_field(psd, seed, *g1.shape[:2]).reshape(-1, 3).T).astype(np.float32)
    return {
        "filter": kern,
        "color": m,
        "noise_cov": cov,
        "noise_corr": 0.0,
        "noise_psd": np.zeros((PSD_BINS, 3, 3), np.float32) if psd is None else psd.astype(np.float32),
        "jpeg": int(q),
        "diag": {
            "noise_lq": round(sig_lq, 4),
            "noise_gen": round(sig_g, 4),
            "jpeg_score": trace.score if trace is not None else None,
            "top_band_ratio": round(top, 3),
        },
    }


def stack_calibrations(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Per-embedding calibration dicts -> the bank's tensors (``color`` [N,3,4], ``noise_cov``
    [N,3,3], ``noise_corr`` [N], ``jpeg`` [N] int64)."""
    return {
        "filter": torch.from_numpy(np.stack([np.asarray(c["filter"], np.float32) for c in items])),
        "color": torch.from_numpy(np.stack([np.asarray(c["color"], np.float32) for c in items])),
        "noise_cov": torch.from_numpy(np.stack([np.asarray(c["noise_cov"], np.float32) for c in items])),
        "noise_corr": torch.tensor([float(c["noise_corr"]) for c in items], dtype=torch.float32),
        "noise_psd": torch.from_numpy(np.stack([np.asarray(c["noise_psd"], np.float32) for c in items])),
        "jpeg": torch.tensor([int(c["jpeg"]) for c in items], dtype=torch.int64),
    }
