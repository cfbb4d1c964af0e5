"""Bake-time calibration (redegkit.bank.calibrate) and its application in synthesis."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from redegkit.bank.calibrate import (
    _corr_table,
    calibrate_pair,
    corr_radius,
    fit_color,
    fit_filters,
    identity_calibration,
)
from redegkit.bank.operators import apply_calibration, hash_normal, shape_noise
from redegkit.degrade.ops import jpeg
from redegkit.io.images import decode_image
from redegkit.metrics.stats import noise_level

from .conftest import EXAMPLES

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    img = decode_image(EXAMPLES / "astronaut.png")
    return cv2.resize(img, (128, 128), interpolation=cv2.INTER_AREA)


def f32(u8: np.ndarray) -> np.ndarray:
    return u8.astype(np.float32) / 127.5 - 1.0


def test_fit_filters_recovers_a_known_blur(face: np.ndarray) -> None:
    """lq = Gaussian blur (sigma 1) of hq, with a useless generator output: the HQ filter is the
    blur kernel and the generator's share vanishes."""
    hq = f32(face)
    kern1d = cv2.getGaussianKernel(7, 1.0).astype(np.float32)[:, 0]
    blur = np.outer(kern1d, kern1d)
    lq = cv2.filter2D(hq, -1, blur, borderType=cv2.BORDER_REFLECT_101)
    gen = np.random.default_rng(0).uniform(-1, 1, hq.shape).astype(np.float32)
    k = fit_filters(hq, gen, lq)
    assert k.shape == (2, 7, 7)
    assert np.abs(k[0] - blur).max() < 0.01 and np.abs(k[1]).max() < 0.01


def test_fit_filters_keeps_a_perfect_generator(face: np.ndarray) -> None:
    hq = f32(face)
    lq = f32(jpeg(face, 30))
    k = fit_filters(hq, lq, lq)  # the generator already makes the LQ
    delta = np.zeros((7, 7), np.float32)
    delta[3, 3] = 1
    assert np.abs(k[1] - delta).max() < 0.01 and np.abs(k[0]).max() < 0.01


def test_fit_color_recovers_an_affine_map(face: np.ndarray) -> None:
    x = f32(face)
    m = np.array([[0.8, 0.1, 0.0, 0.05], [0.0, 0.9, 0.05, -0.02], [0.1, 0.0, 0.7, -0.1]], np.float32)
    y = x @ m[:, :3].T + m[:, 3]
    # the ridge towards identity (needed for grey pairs, where the map is not determined) costs
    # ~0.015 on this photo's strongly correlated channels; the offsets are near exact
    got = fit_color(x, y)
    assert np.abs(got - m).max() < 0.02 and np.abs(got[:, 3] - m[:, 3]).max() < 2e-3
    grey = np.repeat(x[..., :1], 3, axis=2)  # a grey pair: still a finite, near-identity answer
    assert np.isfinite(fit_color(grey, grey)).all()


def test_noise_is_measured_and_reproduced(face: np.ndarray) -> None:
    """A real LQ with sigma-8 colour noise over a generator that makes the clean image: the
    calibrated noise brings the output's noise level to the LQ's (within 15 %), no JPEG."""
    rng = np.random.default_rng(1)
    lq = np.clip(face + rng.normal(0, 8, face.shape), 0, 255).round().astype(np.uint8)
    cal = calibrate_pair(face, lq, f32(face), seed=3)
    assert cal["jpeg"] == 0
    std = float(np.sqrt(np.trace(cal["noise_cov"]) / 3)) * 127.5
    assert 6.0 < std < 10.0  # the field's own std; clipping at 0/255 makes the LQ's a little lower
    post = {
        "strength": 1.0,
        "filter": cal["filter"].tolist(),
        "color": cal["color"].tolist(),
        "noise_cov": cal["noise_cov"].tolist(),
        "noise_corr": cal["noise_corr"],
        "noise_seed": 11,
    }
    hq_t = torch.from_numpy(f32(face)).permute(2, 0, 1)[None]
    out = apply_calibration(hq_t.clone(), hq_t, [post])[0]
    out_u8 = np.clip(np.round((out.permute(1, 2, 0).numpy() + 1) * 127.5), 0, 255).astype(np.uint8)
    assert noise_level(out_u8) == pytest.approx(noise_level(lq), rel=0.15)
    assert cal["noise_corr"] < 0.35  # white noise reads (nearly) white


def test_jpeg_is_measured(face: np.ndarray) -> None:
    """An LQ that is JPEG q25 of the HQ: the calibration picks a quality near 25."""
    cal = calibrate_pair(face, jpeg(face, 25), f32(face), seed=0)
    assert 15 <= cal["jpeg"] <= 40
    # JPEG residue is not a colour cast: the map stays the identity (only the JPEG offsets move)
    assert (
        np.array_equal(cal["color"][:, :3], np.eye(3, dtype=np.float32))
        and np.abs(cal["color"][:, 3]).max() < 0.02
    )


@pytest.mark.parametrize(("sigma", "q"), [(1.0, 30), (0.6, 25)])
def test_jpeg_output_keeps_the_lqs_sharpness(face: np.ndarray, sigma: float, q: int) -> None:
    """LQ = JPEG(blur(HQ)) and a generator that makes blur(HQ): the calibrated output, JPEG'd at
    the calibrated quality as synthesis does, has the LQ's sharpness and HF power. Before the
    filters were refitted for the JPEG, it was blurred twice: -0.57 and -0.89 units at (0.6, 25)."""
    from redegkit.metrics.stats import STAT_SCALES, hf_power, sharpness

    blur = cv2.GaussianBlur(face, (0, 0), sigma)
    lq = jpeg(blur, q)
    cal = calibrate_pair(face, lq, f32(blur), seed=0)
    assert cal["jpeg"] == q
    post = {"strength": 1.0, "filter": cal["filter"].tolist(), "color": cal["color"].tolist(),
            "noise_cov": cal["noise_cov"].tolist(), "noise_corr": cal["noise_corr"], "noise_seed": 1}  # fmt: skip
    hq_t = torch.from_numpy(f32(face)).permute(2, 0, 1)[None]
    out = apply_calibration(torch.from_numpy(f32(blur)).permute(2, 0, 1)[None], hq_t, [post])[0]
    u8 = jpeg(np.clip(np.round((out.permute(1, 2, 0).numpy() + 1) * 127.5), 0, 255).astype(np.uint8), q)
    assert abs(sharpness(u8) - sharpness(lq)) / STAT_SCALES["sharpness"] < 0.25
    assert abs(hf_power(u8) - hf_power(lq)) / STAT_SCALES["hf_power"] < 0.3


def test_a_real_cast_keeps_its_colour_map(face: np.ndarray) -> None:
    from redegkit.degrade.ops import color

    lq = color(face, gain=(1.05, 1.0, 0.85), offset=(14 / 255, 8 / 255, 0.0), saturation=0.7)
    cal = calibrate_pair(face, lq, f32(face), seed=0)
    assert cal["color"][2, 2] < 0.95 and cal["color"][0, 3] > 0.03


def test_clean_pair_needs_nothing(face: np.ndarray) -> None:
    cal = calibrate_pair(face, face, f32(face), seed=0)
    assert cal["jpeg"] == 0 and not cal["noise_cov"].any()


def test_shape_noise_covariance_and_correlation() -> None:
    cov = torch.tensor([[4.0, 2.0, 0.0], [2.0, 4.0, 0.0], [0.0, 0.0, 1.0]]) * 1e-3
    white = hash_normal([5], (3, 96, 96))
    n = shape_noise(white, cov, 0.0)[0].reshape(3, -1).double()
    assert torch.allclose(torch.cov(n), cov.double(), rtol=0.1, atol=2e-4)
    # a correlation radius survives the round trip measure -> radius
    sig, rhos = _corr_table()
    assert np.all(np.diff(rhos) > 0)  # monotone, so the inversion is unique
    assert corr_radius(float(rhos[4])) == pytest.approx(float(sig[4]), abs=1e-6)


def test_identity_calibration_and_strength_zero() -> None:
    y = torch.rand(2, 3, 16, 16) * 2 - 1
    hq = torch.rand(2, 3, 16, 16) * 2 - 1
    ident = identity_calibration(2)
    posts = [
        {
            "strength": 1.0,
            "filter": ident["filter"][i].tolist(),
            "color": ident["color"][i].tolist(),
            "noise_cov": ident["noise_cov"][i].tolist(),
            "noise_corr": 0.0,
            "noise_seed": 1,
        }
        for i in range(2)
    ]
    assert torch.allclose(apply_calibration(y, hq, posts), y, atol=1e-6)
    zero = [{**p, "strength": 0.0, "noise_cov": [[1e-2] * 3] * 3} for p in posts]
    assert torch.equal(apply_calibration(y, hq, zero), hq.clamp(-1, 1))
