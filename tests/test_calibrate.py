"""Bake-time calibration (redegkit.bank.calibrate) and its application in synthesis."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from redegkit.bank.calibrate import (
    calibrate_pair,
    cross_spectrum,
    fit_color,
    fit_filters,
    identity_calibration,
)
from redegkit.bank.operators import PSD_BINS, apply_calibration, hash_normal, shape_noise, spectral_noise
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


def _post(cal: dict, seed: int = 11) -> dict:
    """A calibration as synthesis's apply_calibration reads it (strength 1)."""
    keys = ("filter", "color", "noise_cov", "noise_corr", "noise_psd")
    return {"strength": 1.0, "noise_seed": seed, **{k: np.asarray(cal[k]).tolist() for k in keys}}


def _apply(cal: dict, hq: np.ndarray, gen: np.ndarray) -> np.ndarray:
    """The finished synthesized LQ of one pair (uint8): calibration, rounding, the JPEG step."""
    hq_t = torch.from_numpy(f32(hq)).permute(2, 0, 1)[None]
    out = apply_calibration(torch.from_numpy(gen).permute(2, 0, 1)[None], hq_t, [_post(cal)])[0]
    u8 = np.clip(np.round((out.permute(1, 2, 0).numpy() + 1) * 127.5), 0, 255).astype(np.uint8)
    return jpeg(u8, cal["jpeg"]) if cal["jpeg"] else u8


def test_noise_is_measured_and_reproduced(face: np.ndarray) -> None:
    """A real LQ with sigma-8 colour noise over a generator that makes the clean image: the
    calibrated noise brings the output's noise level to the LQ's (within 15 %), no JPEG, and its
    measured spectrum is white (flat over the bands) with independent channels."""
    rng = np.random.default_rng(1)
    lq = np.clip(face + rng.normal(0, 8, face.shape), 0, 255).round().astype(np.uint8)
    cal = calibrate_pair(face, lq, f32(face), seed=3)
    assert cal["jpeg"] == 0 and cal["noise_psd"].shape == (PSD_BINS, 3, 3)
    std = float(np.sqrt(np.trace(cal["noise_cov"]) / 3)) * 127.5
    assert 6.5 < std < 8.5  # the field's own std; clipping at 0/255 makes the LQ's a little lower
    band = np.trace(cal["noise_psd"], axis1=1, axis2=2)
    assert band.max() / band.min() < 1.4  # white
    corr = cal["noise_cov"][0, 1] / np.sqrt(cal["noise_cov"][0, 0] * cal["noise_cov"][1, 1])
    assert abs(corr) < 0.15  # independent channels
    assert noise_level(_apply(cal, face, f32(face))) == pytest.approx(noise_level(lq), rel=0.15)


@pytest.fixture(scope="module")
def face256() -> np.ndarray:
    img = decode_image(EXAMPLES / "astronaut.png")
    return cv2.resize(img[0:300, 120:420], (256, 256), interpolation=cv2.INTER_AREA)


def test_noise_under_a_light_jpeg_keeps_the_lqs_texture(face256: np.ndarray) -> None:
    """The suite's sensor-noise-blur on a face: blur, sigma-10 colour noise, JPEG q85, with a
    generator that makes the blur. The JPEG keeps the noise's low band and thins its finest band,
    which the noise estimator reads; the finished synthesized LQ must match the LQ's sharpness and
    HF power, not only its noise reading. With one Gaussian radius and the level set on the finest
    band (before the measured spectrum) it was too smooth: -1.85 and -2.15 units here."""
    from redegkit.metrics.stats import STAT_SCALES, hf_power, sharpness

    blur = cv2.GaussianBlur(face256, (0, 0), 1.2)
    rng = np.random.default_rng(0)
    lq = jpeg(np.clip(blur + rng.normal(0, 10, blur.shape), 0, 255).round().astype(np.uint8), 85)
    cal = calibrate_pair(face256, lq, f32(blur), seed=0)
    out = _apply(cal, face256, f32(blur))
    assert abs(sharpness(out) - sharpness(lq)) / STAT_SCALES["sharpness"] < 0.3
    assert abs(hf_power(out) - hf_power(lq)) / STAT_SCALES["hf_power"] < 0.3
    assert noise_level(out) == pytest.approx(noise_level(lq), rel=0.1)


@pytest.mark.parametrize("sigma", [6.0, 0.0])
def test_noise_under_a_strong_jpeg_is_found(face256: np.ndarray, sigma: float) -> None:
    """JPEG q35 quantises sigma-6 noise out of the finest band (the noise estimator reads ~0 on
    the LQ), but not out of its top bands: the calibration finds noise there and puts it in
    before the JPEG. The same JPEG without noise gets none. Before, strong-combo's noise went
    unmeasured and its synthesized LQ read 0.72 of the truth's noise level."""
    base = cv2.resize(cv2.resize(cv2.GaussianBlur(face256, (0, 0), 1.6), (128, 128)), (256, 256))
    rng = np.random.default_rng(0)
    lq = jpeg(np.clip(base + rng.normal(0, sigma, base.shape), 0, 255).round().astype(np.uint8), 35)
    assert noise_level(lq) < 0.3
    cal = calibrate_pair(face256, lq, f32(base), seed=0)
    assert 30 <= cal["jpeg"] <= 40
    if sigma:
        std = float(np.sqrt(np.trace(cal["noise_cov"]) / 3)) * 127.5
        assert 2.0 < std < 6.0  # luma-like noise, weaker than the camera's: its chroma is gone
        assert noise_level(_apply(cal, face256, f32(base))) == pytest.approx(noise_level(lq), abs=0.3)
    else:
        assert not cal["noise_psd"].any() and not cal["noise_cov"].any()


def test_jpeg_is_measured(face: np.ndarray) -> None:
    """An LQ that is JPEG q25 of the HQ: the calibration reads quality 25 from its coefficients."""
    cal = calibrate_pair(face, jpeg(face, 25), f32(face), seed=0)
    assert cal["jpeg"] == 25
    # JPEG residue is not a colour cast: the map stays the identity (only the JPEG offsets move)
    assert (
        np.array_equal(cal["color"][:, :3], np.eye(3, dtype=np.float32))
        and np.abs(cal["color"][:, 3]).max() < 0.02
    )


def test_a_resampled_lq_gets_no_jpeg() -> None:
    """The suite's resample-halo on the cameraman's face: x0.5 area down, bicubic up, strong
    unsharp masking, with a generator that sharpens but cannot place the resampling's period-2
    steps (it is translation-equivariant). Those steps read as 8x8 blockiness, and bake used to
    give such pairs a JPEG step (q75-95 on 10 of the suite's 12 cameraman views; q85 here). No
    JPEG quantised the LQ's coefficients, so it gets none."""
    cam = decode_image(EXAMPLES / "camera.png")
    hq = cv2.resize(cam[20:276, 150:406], (128, 128), interpolation=cv2.INTER_AREA)
    up = cv2.resize(
        cv2.resize(hq, (64, 64), interpolation=cv2.INTER_AREA), (128, 128), interpolation=cv2.INTER_CUBIC
    )
    lq = cv2.addWeighted(up, 2.5, cv2.GaussianBlur(up, (0, 0), 1.5), -1.5, 0)
    soft = cv2.GaussianBlur(hq, (0, 0), 0.7)
    gen = cv2.addWeighted(soft, 2.5, cv2.GaussianBlur(soft, (0, 0), 1.5), -1.5, 0)
    cal = calibrate_pair(hq, lq, f32(gen), seed=0)
    assert cal["jpeg"] == 0 and not cal["noise_psd"].any()


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
    u8 = _apply(cal, face, f32(blur))
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


def test_shape_noise_covariance() -> None:
    """Banks baked before the spectrum: white noise shaped by a channel covariance."""
    cov = torch.tensor([[4.0, 2.0, 0.0], [2.0, 4.0, 0.0], [0.0, 0.0, 1.0]]) * 1e-3
    white = hash_normal([5], (3, 96, 96))
    n = shape_noise(white, cov, 0.0)[0].reshape(3, -1).double()
    assert torch.allclose(torch.cov(n), cov.double(), rtol=0.1, atol=2e-4)


def test_spectral_noise_round_trip() -> None:
    """A flat spectrum is the white noise scaled, exactly; a shaped one (luma and chroma each
    falling with frequency, chroma faster, as JPEG leaves camera noise) is what Welch's
    estimate reads back from the synthesized field, band by band, within 10 %."""
    white = hash_normal([7, 8], (3, 256, 256))
    flat = (torch.eye(3) * 0.25).expand(2, PSD_BINS, 3, 3)
    assert torch.allclose(spectral_noise(white, flat), 0.5 * white, atol=1e-5)
    luma = torch.ones(3, 3) / 3
    chroma = torch.eye(3) - luma
    level = torch.linspace(1.0, 0.2, PSD_BINS)
    fade = torch.linspace(0.8, 0.05, PSD_BINS)
    psd = level[:, None, None] * luma + fade[:, None, None] * chroma
    field = spectral_noise(white, psd.expand(2, -1, -1, -1))
    k = 16
    corners = np.array([(i, j) for i in range(0, 256 - k + 1, 8) for j in range(0, 256 - k + 1, 8)])
    got = cross_spectrum(field[0].permute(1, 2, 0).numpy(), corners)
    want = psd.numpy()
    for b in range(1, 6):
        assert np.trace(got[b]) == pytest.approx(np.trace(want[b]), rel=0.03), b
    # the end bands carry the 16 px Hann window's leakage: next to DC -12 %, the corners +10 % and
    # +42 % under this steep slope; bake compares its target and its synthesized output through
    # this same estimator, so the bias cancels. White noise reads flat to 6 % in every band.
    flat_got = cross_spectrum(white[0].permute(1, 2, 0).numpy(), corners)
    assert np.allclose(np.trace(flat_got, axis1=1, axis2=2), 3.0, rtol=0.07)
    # the channels' coupling per band: chroma power is the part orthogonal to luma
    for b in (1, 6):
        assert np.trace(chroma.numpy() @ got[b]) == pytest.approx(2 * float(fade[b]), rel=0.15), b


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
