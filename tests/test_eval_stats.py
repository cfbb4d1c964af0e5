"""Degradation statistics: golden values on synthetic images, and the right direction on photos."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from redegkit import metrics
from redegkit.metrics import stats as S

from .conftest import EXAMPLES


def _photo(name: str = "chelsea.png", side: int = 128) -> np.ndarray:
    img = cv2.cvtColor(cv2.imread(str(EXAMPLES / name)), cv2.COLOR_BGR2RGB)
    return cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _smooth(h: int = 96, w: int = 96) -> np.ndarray:
    """Slow sines and ramps in mid-range: no texture, no clipping when noise is added."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.stack([100 + 40 * np.sin(x / 15), 120 + 30 * np.cos(y / 20), 110 + 0.3 * (x + y)], -1)


def _noisy(sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = _smooth()
    return np.clip(base + rng.normal(0, sigma, base.shape), 0, 255).round().astype(np.uint8)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma)


def _checker_blocks(side: int = 64) -> np.ndarray:
    """Flat 8x8 blocks alternating between grey 100 and 140: a pure JPEG-like grid."""
    y, x = np.mgrid[0:side, 0:side]
    grey = np.where((y // 8 + x // 8) % 2 == 0, 100, 140).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


# noise_level ---------------------------------------------------------------------------------
def test_noise_level_golden_sigma_10():
    assert S.noise_level(_noisy(10.0)) == pytest.approx(10.0, rel=0.10)


def test_noise_level_clean_smooth_is_near_zero_and_monotone():
    levels = [S.noise_level(_noisy(s)) for s in (0, 2, 5, 10, 20)]
    assert levels[0] < 0.5
    assert levels == sorted(levels) and len(set(levels)) == len(levels)
    assert levels[1] == pytest.approx(2.0, rel=0.15)


def test_noise_level_on_a_photo_ignores_edges():
    # A clean textured photo reads a few levels at most, and added noise of 10 reads ~10.
    photo = _photo()
    rng = np.random.default_rng(1)
    noisy = np.clip(photo + rng.normal(0, 10, photo.shape), 0, 255).round().astype(np.uint8)
    assert S.noise_level(photo) < 2.0
    assert S.noise_level(noisy) == pytest.approx(10.0, rel=0.15)


# blockiness ----------------------------------------------------------------------------------
def test_blockiness_golden_flat_blocks():
    # Every 8th column/row step is clipped to 2 grey levels, the rest are 0; +0.25 floor:
    # (2 + 0.25) / 0.25 - 1 = 8 for rows and for columns.
    assert S.blockiness(_checker_blocks()) == pytest.approx(8.0, abs=1e-12)
    assert S.blockiness(_checker_blocks()[3:, 5:]) == pytest.approx(8.0, abs=1e-12)  # any grid phase


def test_blockiness_flat_image_is_zero():
    assert S.blockiness(np.full((32, 40, 3), 77, np.uint8)) == 0.0


def test_blockiness_jpeg_quality_order():
    photo = _photo()
    q20, q90, clean = S.blockiness(_jpeg(photo, 20)), S.blockiness(_jpeg(photo, 90)), S.blockiness(photo)
    assert q20 > 0.25
    assert q20 > 4 * q90
    assert q90 < 0.06 and clean < 0.06


def test_blockiness_is_phase_invariant():
    blocky = _jpeg(_photo(), 20)
    assert S.blockiness(blocky[3:, 3:]) == pytest.approx(S.blockiness(blocky), rel=0.1)
    assert S.blockiness(blocky[:, 5:]) == pytest.approx(S.blockiness(blocky), rel=0.1)


# sharpness, hf_power, spectral_slope ---------------------------------------------------------
def test_sharpness_golden_pixel_checkerboard():
    # Grey 128 +- 10 alternating per pixel: the 4-neighbour Laplacian is -+80 everywhere (the
    # border reflects without repeating the edge), so its variance is 6400.
    y, x = np.mgrid[0:16, 0:16]
    grey = np.where((x + y) % 2 == 0, 138, 118).astype(np.uint8)
    img = np.repeat(grey[..., None], 3, axis=2)
    assert S.sharpness(img) == pytest.approx(math.log10(6400.0), abs=1e-9)


def test_sharpness_and_hf_power_fall_with_blur():
    photo = _photo()
    sharp = [S.sharpness(_blur(photo, s)) for s in (0.6, 1.0, 2.0)]
    hf = [S.hf_power(_blur(photo, s)) for s in (0.6, 1.0, 2.0)]
    assert S.sharpness(photo) > sharp[0] > sharp[1] > sharp[2]
    assert S.hf_power(photo) > hf[0] > hf[1] > hf[2]


def test_hf_power_and_slope_golden_white_noise():
    # White noise has a flat spectrum: the fraction above half-Nyquist is the area of the
    # frequency square outside the circle of radius 0.25, 1 - pi/16; the slope is 0.
    noises = [np.random.default_rng(s).integers(0, 256, (128, 128, 3), dtype=np.uint8) for s in range(4)]
    assert S.hf_power(noises[0]) == pytest.approx(math.log10(1 - math.pi / 16), abs=0.01)
    assert np.mean([S.spectral_slope(n) for n in noises]) == pytest.approx(0.0, abs=0.1)


def test_spectral_slope_steepens_with_blur():
    photo = _photo()
    slopes = [S.spectral_slope(photo)] + [S.spectral_slope(_blur(photo, s)) for s in (1.0, 2.0)]
    assert -3.5 < slopes[0] < -2.0  # a natural photo
    assert slopes[0] > slopes[1] > slopes[2]


def test_hf_power_constant_image_floor():
    assert S.hf_power(np.full((16, 16, 3), 9, np.uint8)) == -12.0


# colour, saturation, contrast ----------------------------------------------------------------
def test_colour_saturation_contrast_golden():
    img = np.zeros((8, 10, 3), np.uint8)
    img[:, :5] = (100, 100, 100)
    img[:, 5:] = (140, 140, 140)
    assert S.colour(img) == (120.0, 120.0, 120.0)
    assert S.contrast(img) == pytest.approx(20.0, abs=1e-9)
    assert S.saturation(img) == 0.0
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    assert S.saturation(red) == pytest.approx(1.0)
    assert S.luma(red)[0, 0] == pytest.approx(0.299 * 255)


def test_bad_input_names_what_was_expected():
    with pytest.raises(ValueError, match="RGB uint8 HxWx3"):
        S.noise_level(np.zeros((16, 16), np.uint8))
    with pytest.raises(ValueError, match="RGB uint8 HxWx3"):
        S.sharpness(np.zeros((16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="at least 8x8"):
        S.blockiness(np.zeros((4, 16, 3), np.uint8))


# paired statistics and the distance ----------------------------------------------------------
def test_paired_stats_known_colour_offset():
    hq = _photo(side=64)
    hq = np.clip(hq, 10, 240).astype(np.uint8)  # room for the offset without clipping
    lq = (hq.astype(np.int16) + np.array([5, -3, 0], np.int16)).astype(np.uint8)
    st = S.paired_stats(hq, lq)
    assert set(st) == set(S.PAIRED_KEYS)
    assert st["color"] == pytest.approx([5.0, -3.0, 0.0], abs=1e-9)
    assert st["sharpness"] == pytest.approx(0.0, abs=1e-9)  # an offset changes no Laplacian
    assert st["hf_power"] == pytest.approx(0.0, abs=1e-9)
    assert st["noise"] == pytest.approx(S.noise_level(lq))
    assert st["blockiness"] == pytest.approx(S.blockiness(lq))


def test_paired_stats_identity_and_directions():
    hq = _photo(side=96)
    same = S.paired_stats(hq, hq)
    assert same["color"] == [0.0, 0.0, 0.0] and same["sharpness"] == 0.0 and same["hf_power"] == 0.0
    blurred = S.paired_stats(hq, _blur(hq, 1.5))
    assert blurred["sharpness"] < -0.5 and blurred["hf_power"] < -0.5
    assert S.paired_stats(hq, _jpeg(hq, 20))["blockiness"] > 0.25


def test_paired_stats_downsamples_hq_to_a_smaller_lq():
    hq = _photo(side=128)
    lq = cv2.resize(hq, (32, 32), interpolation=cv2.INTER_AREA)
    st = S.paired_stats(hq, lq)
    assert st["sharpness"] == 0.0 and st["color"] == [0.0, 0.0, 0.0]  # the HQ was area-resized
    with pytest.raises(ValueError, match="larger than hq"):
        S.paired_stats(lq, hq)


def test_stats_distance_identity_is_exactly_zero():
    hq = _photo(side=64)
    crops = [S.paired_stats(hq, _jpeg(hq, q)) for q in (30, 70)]
    d = S.stats_distance(crops, [dict(c) for c in crops])
    assert set(d) == {*S.PAIRED_KEYS, "overall"}
    assert all(v == 0.0 for v in d.values())


def test_stats_distance_golden_units():
    zero = {"color": [0.0, 0.0, 0.0], "sharpness": 0.0, "noise": 1.0, "blockiness": 0.0, "hf_power": 0.0}
    truth = [zero, zero]
    cand = [
        {"color": [3.0, 4.0, 0.0], "sharpness": -0.5, "noise": 3.0, "blockiness": 0.1, "hf_power": 0.25},
        dict(zero),
    ]
    d = S.stats_distance(cand, truth)
    # per key: mean over the 2 crops of |diff| / scale
    assert d["color"] == pytest.approx(5.0 / 8.0 / 2)
    assert d["sharpness"] == pytest.approx(0.5 / 0.25 / 2)
    assert d["noise"] == pytest.approx(2.0 / 2.0 / 2)
    assert d["blockiness"] == pytest.approx(0.1 / 0.05 / 2)
    assert d["hf_power"] == pytest.approx(0.25 / 0.25 / 2)
    assert d["overall"] == pytest.approx(np.mean([d[k] for k in S.PAIRED_KEYS]))
    with pytest.raises(ValueError, match="same|vs"):
        S.stats_distance(cand, truth[:1])
    with pytest.raises(ValueError, match="no crops"):
        S.stats_distance([], [])


def test_scales_cover_every_paired_key():
    assert set(S.STAT_SCALES) == set(S.PAIRED_KEYS)
    assert all(v > 0 for v in S.STAT_SCALES.values())


# psnr / ssim are the package's (redegkit.metrics) ------------------------------------------------
def test_psnr_ssim_are_the_package_metrics():
    a = _photo(side=64)
    b = _jpeg(a, 40)
    assert S.psnr is metrics.psnr and S.ssim is metrics.ssim
    assert S.psnr(a, b) == metrics.psnr(a, b, y=True, border=0) < 40
    assert S.psnr(a, a) == math.inf and S.ssim(a, a) == pytest.approx(1.0)


def test_module_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, redegkit.metrics.stats; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
