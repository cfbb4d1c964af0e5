"""Geometry/signal artefacts and the camera ISP step, on small hand-computed arrays:
pixelate, interlace, ghosting, motion blur, speckle and salt-and-pepper noise, unprocess/process."""

from __future__ import annotations

import numpy as np
import pytest

from redegkit.degrade import artefacts as A
from redegkit.degrade import isp, ops
from redegkit.degrade.kernels import motion_kernel

from .conftest import gradient_rgb


def _rows(h: int, w: int = 2) -> np.ndarray:
    """float32 HxWx3 whose row r has the value r / 10 in every channel."""
    return np.repeat(np.repeat((np.arange(h, dtype=np.float32) / 10)[:, None, None], w, 1), 3, 2)


# ------------------------------------------------------------------------------------ pixelate


def test_pixelate_hand_computed() -> None:
    x = np.arange(5 * 5 * 3, dtype=np.float32).reshape(5, 5, 3) / 100
    out = A.pixelate(x, 2)[..., 0] * 100
    # channel 0 is 3 (5 r + c): the tile rows {0,1} x cols {0,1} = (0, 3, 15, 18) -> 9; the cut
    # tiles average only their real pixels: col 4 of rows {0,1} = (12, 27) -> 19.5, corner 72
    want = [
        [9, 9, 15, 15, 19.5],
        [9, 9, 15, 15, 19.5],
        [39, 39, 45, 45, 49.5],
        [39, 39, 45, 45, 49.5],
        [61.5, 61.5, 67.5, 67.5, 72],
    ]
    assert np.allclose(out, want, atol=1e-4)
    img = gradient_rgb(33, 47)
    assert np.array_equal(A.pixelate(img, 1), img)
    assert len(np.unique(A.pixelate(img, 8)[..., 0])) <= 5 * 6


# ----------------------------------------------------------------------------------- interlace


def test_interlace_modes_hand_computed() -> None:
    x = _rows(5)
    col = lambda a: np.round(a[:, 0, 0] * 10, 4).tolist()  # noqa: E731
    # weave, top field kept, content 1 row lower in the later field: odd rows show row r - 1
    assert col(A.interlace(x, "weave", "top", (1.0, 0.0))) == [0, 0, 2, 2, 4]
    # blend: the woven rows averaged with the row below (the last row stays)
    assert col(A.interlace(x, "blend", "top", (1.0, 0.0))) == [0, 1, 2, 3, 4]
    # drop: the bottom field is rebuilt from the top one
    assert col(A.interlace(x, "drop", "top", fill="duplicate")) == [0, 0, 2, 2, 4]
    assert col(A.interlace(x, "drop", "top", fill="linear")) == [0, 1, 2, 3, 4]
    assert col(A.interlace(x, "drop", "bottom", fill="duplicate")) == [1, 1, 1, 3, 3]
    assert col(A.interlace(x, "drop", "bottom", fill="linear")) == [1, 1, 2, 3, 3]
    # no motion: weaving changes nothing
    img = gradient_rgb(20, 30)
    assert np.array_equal(A.interlace(img, "weave", "bottom"), img)
    with pytest.raises(ValueError, match="mode"):
        A.interlace(img, "bob")


def test_interlace_combs_moving_edges() -> None:
    img = np.zeros((32, 32, 3), np.uint8)
    img[:, 16:] = 255
    out = A.interlace(img, "weave", "top", (0.0, 4.0)).astype(int)
    # the edge is at 16 on even rows and at 20 on odd rows: a comb
    assert (out[0::2, 17] == 255).all() and (out[1::2, 17] == 0).all()


# ------------------------------------------------------------------------------------ ghosting


def test_ghosting_is_a_weighted_shifted_copy() -> None:
    img = np.zeros((8, 16, 3), np.float32)
    img[:, 4] = 1.0
    out = A.ghosting(img, (0.0, 3.0), 0.5, echoes=2)
    # weights 1, .5, .25 (sum 1.75): the line at 4, echoes at 7 and 10
    assert np.allclose(out[0, [4, 7, 10], 0], [1 / 1.75, 0.5 / 1.75, 0.25 / 1.75], atol=1e-6)
    assert np.allclose(out[0, [3, 5, 6, 8, 9, 11], 0], 0.0, atol=1e-6)
    flat = np.full((8, 8, 3), 0.3, np.float32)
    assert np.allclose(A.ghosting(flat, (2.0, 5.0), 0.8, 3), flat)
    with pytest.raises(ValueError, match="amount"):
        A.ghosting(flat, (1.0, 1.0), 1.0)


# --------------------------------------------------------------------------------- motion blur


@pytest.mark.parametrize("length,angle", [(1.0, 0.0), (7.0, 0.0), (9.5, 30.0), (20.0, 90.0), (45.0, 135.0)])
def test_motion_kernel_is_a_line(length: float, angle: float) -> None:
    k = motion_kernel(length, angle).astype(np.float64)
    n = k.shape[0]
    assert n % 2 == 1 and abs(k.sum() - 1) < 1e-6 and np.allclose(k, k[::-1, ::-1], atol=1e-7)
    ax = np.arange(n) - n // 2
    yy, xx = np.meshgrid(ax, ax, indexing="ij")
    a = np.radians(angle)
    along, across = xx * np.cos(a) - yy * np.sin(a), xx * np.sin(a) + yy * np.cos(a)
    # a uniform segment of length L has variance L^2 / 12 along it (+ under 1/2 from the bilinear
    # splat and the sampled end points)
    assert length**2 / 12 - 0.05 < (k * along**2).sum() < length**2 / 12 + 0.7
    assert (k * across**2).sum() < 0.25
    if angle == 0.0:
        assert np.allclose(k[: n // 2], 0) and np.allclose(k[n // 2 + 1 :], 0)  # one row


def test_motion_blur_smears_along_its_direction_only() -> None:
    dot = np.zeros((41, 41, 3), np.float32)
    dot[20, 20] = 1.0
    out = A.motion_blur(dot, 10.0, 0.0)[..., 0]
    assert out[20].sum() == pytest.approx(1.0, abs=1e-5) and np.allclose(np.delete(out, 20, axis=0), 0)
    assert np.count_nonzero(out[20] > 1e-4) >= 10
    assert np.array_equal(A.motion_blur(gradient_rgb(16, 16), 0.0, 45.0), gradient_rgb(16, 16))
    with pytest.raises(ValueError, match="motion length"):
        motion_kernel(70.0, 0.0)


# ------------------------------------------------------------------------------- noise: speckle


def test_speckle_is_multiplicative() -> None:
    for v in (40, 160):
        flat = np.full((192, 192, 3), v, np.uint8)
        out = A.speckle_noise(ops.to_float(flat), 0.1, seed=4) * 255
        assert abs(out.std() - 0.1 * v) < 0.04 * 0.1 * v + 0.1 and abs(out.mean() - v) < 0.5
    black = np.zeros((16, 16, 3), np.uint8)
    assert np.array_equal(A.speckle_noise(black, 0.5, seed=1), black)
    g = A.speckle_noise(np.full((32, 32, 3), 120, np.uint8), 0.2, seed=1, gray=True)
    assert np.array_equal(g[..., 0], g[..., 2]) and g.std() > 0
    a = A.speckle_noise(gradient_rgb(24, 24), 0.2, seed=9)
    assert np.array_equal(a, A.speckle_noise(gradient_rgb(24, 24), 0.2, seed=9))


def test_salt_and_pepper_shares_and_positions() -> None:
    flat = np.full((200, 200, 3), 128, np.uint8)
    out = A.salt_pepper(flat, 0.05, seed=3, salt=0.3)
    white = (out == 255).all(axis=2).mean()
    black = (out == 0).all(axis=2).mean()
    assert abs(white - 0.015) < 0.004 and abs(black - 0.035) < 0.005
    assert ((out == 128).all(axis=2) | (out == 255).all(axis=2) | (out == 0).all(axis=2)).all()
    pc = A.salt_pepper(flat, 0.05, seed=3, per_channel=True)
    assert abs((pc != 128).mean() - 0.05) < 0.005 and (pc != 128).any(axis=2).mean() > 0.12
    # one seed, two images of the same size: the same positions
    other = A.salt_pepper(np.full((200, 200, 3), 60, np.uint8), 0.05, seed=3, salt=0.3)
    assert np.array_equal(other == 60, out == 128)


# -------------------------------------------------------------------------------------- the ISP

CCM = np.array([[1.7, -0.5, -0.2], [-0.3, 1.6, -0.3], [-0.05, -0.55, 1.6]])


@pytest.mark.parametrize("tone_curve", [True, False])
def test_isp_unprocess_then_process_is_the_identity(tone_curve: bool) -> None:
    x = np.random.default_rng(0).random((33, 47, 3))
    x[0, 0] = (0, 0, 0)
    x[0, 1] = (1, 1, 1)
    cam = isp.unprocess(x, CCM, 2.1, 1.7, 1.25, tone_curve)
    back = isp.process(cam, CCM, 2.1, 1.7, 1.25, tone_curve)
    assert np.abs(back - x).max() < 1e-5
    assert np.abs(isp.smoothstep(isp.inverse_smoothstep(x)) - x).max() < 1e-12


def test_isp_steps_hand_computed() -> None:
    # grey 0.5 without the tone curve: 0.5 ** 2.2 linear, the CCM keeps grey (rows sum to 1), then
    # divided by the gains (R: 2 * 1.25, G: 1.25, B: 1.5 * 1.25)
    cam = isp.unprocess(np.full((1, 1, 3), 0.5), CCM, 2.0, 1.5, 1.25, tone_curve=False)
    lin = 0.5**2.2
    assert np.allclose(cam[0, 0], [lin / 2.5, lin / 1.25, lin / 1.875], atol=1e-12)
    # the Bayer sites: RGGB keeps R at (0, 0), G at (0, 1) and (1, 0), B at (1, 1)
    rgb = np.stack([np.full((2, 2), v) for v in (1.0, 2.0, 3.0)], axis=2)
    assert isp.mosaic(rgb, "RGGB").tolist() == [[1, 2], [2, 3]]
    assert isp.mosaic(rgb, "BGGR").tolist() == [[3, 2], [2, 1]]
    assert isp.mosaic(rgb, "GRBG").tolist() == [[2, 1], [3, 2]]
    assert isp.mosaic(rgb, "GBRG").tolist() == [[2, 3], [1, 2]]


@pytest.mark.parametrize("pattern", isp.BAYER_PATTERNS)
@pytest.mark.parametrize("method", isp.DEMOSAIC)
def test_demosaic_recovers_flat_colours_for_every_pattern(pattern: str, method: str) -> None:
    flat = np.ones((8, 10, 3)) * np.array([0.2, 0.5, 0.8])
    assert np.abs(isp.demosaic(isp.mosaic(flat, pattern), pattern, method) - flat).max() < 2e-5


def test_camera_isp_noise_follows_the_shot_read_model() -> None:
    kw = dict(ccm=np.eye(3), r_gain=1.0, b_gain=1.0, rgb_gain=1.0, pattern="RGGB", bits=16, seed=5)
    for v in (0.2, 0.6):
        flat = np.full((128, 128, 3), v, np.float32)
        lin = isp.unprocess(flat, np.eye(3), 1, 1, 1, tone_curve=False)[0, 0, 0]
        clean = isp.camera_isp(flat, shot=0.0, read=0.0, tone_curve=False, **kw)
        noisy = isp.camera_isp(flat, shot=0.01, read=1e-4, tone_curve=False, **kw)
        assert np.abs(clean - flat).max() < 1e-3
        # raw std sqrt(shot * lin + read), through bilinear demosaicing (which averages) and the gamma
        raw_std = np.sqrt(0.01 * lin + 1e-4)
        slope = (1 / 2.2) * lin ** (1 / 2.2 - 1)
        measured = noisy[8:-8, 8:-8, 1].std()
        assert 0.3 * raw_std * slope < measured < 1.05 * raw_std * slope
    img = gradient_rgb(37, 50)
    a = isp.camera_isp(img, shot=0.005, read=1e-5, **{**kw, "ccm": CCM, "bits": 12})
    assert a.dtype == np.uint8 and a.shape == img.shape
    assert np.array_equal(
        a, isp.camera_isp(img.copy(), shot=0.005, read=1e-5, **{**kw, "ccm": CCM, "bits": 12})
    )
    for h, w in ((1, 1), (1, 6), (2, 3)):
        assert isp.camera_isp(gradient_rgb(h, w), shot=0.01, read=0.0, **kw).shape == (h, w, 3)
    with pytest.raises(ValueError, match="bits"):
        isp.camera_isp(img, shot=0.01, read=0.0, **{**kw, "bits": 4})
