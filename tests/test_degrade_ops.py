"""Each degradation op on its own: kernels, blur, resize, noise, JPEG, nearest + realign."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from redegkit.degrade import kernels as K
from redegkit.degrade import ops
from redegkit.metrics import psnr

from .conftest import gradient_rgb

# ------------------------------------------------------------------------------------ kernels

KERNEL_CASES = [
    ("iso", dict(sigma_x=1.7, sigma_y=1.7)),
    ("aniso", dict(sigma_x=2.5, sigma_y=0.6, angle=30.0)),
    ("generalized_iso", dict(sigma_x=1.5, sigma_y=1.5, beta=0.7)),
    ("generalized_aniso", dict(sigma_x=2.0, sigma_y=1.0, angle=-45.0, beta=3.0)),
    ("plateau_iso", dict(sigma_x=1.2, sigma_y=1.2, beta=1.5)),
    ("plateau_aniso", dict(sigma_x=2.2, sigma_y=0.8, angle=70.0, beta=1.2)),
    ("sinc", dict(cutoff=0.4)),
]


@pytest.mark.parametrize("kind,kw", KERNEL_CASES)
@pytest.mark.parametrize("size", [7, 21])
def test_kernels_normalised_odd_and_centrosymmetric(kind: str, kw: dict, size: int) -> None:
    k = K.make_kernel(kind, size, **kw)
    assert k.shape == (size, size) and k.dtype == np.float32
    assert abs(float(k.sum()) - 1.0) < 1e-5
    # every un-shifted kernel is point-symmetric about its centre
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-7)
    assert np.unravel_index(np.argmax(k), k.shape) == (size // 2, size // 2)


@pytest.mark.parametrize("kind", ["iso", "generalized_iso", "plateau_iso", "sinc"])
def test_isotropic_kernels_have_all_mirror_symmetries(kind: str) -> None:
    k = K.make_kernel(kind, 15, sigma_x=1.8, sigma_y=1.8, beta=2.0, cutoff=0.5)
    np.testing.assert_allclose(k, k.T, atol=1e-7)
    np.testing.assert_allclose(k, k[::-1], atol=1e-7)
    np.testing.assert_allclose(k, k[:, ::-1], atol=1e-7)


def test_anisotropic_rotation_and_special_cases() -> None:
    k0 = K.anisotropic_gaussian_kernel(15, 3.0, 1.0, 0.0)
    k90 = K.anisotropic_gaussian_kernel(15, 3.0, 1.0, 90.0)
    np.testing.assert_allclose(k90, k0.T, atol=1e-6)
    # wider along x at angle 0: the horizontal profile through the centre is broader
    assert k0[7, 3] > k0[3, 7]
    # 45 degrees: symmetric about the main diagonal, not the anti-diagonal
    k45 = K.anisotropic_gaussian_kernel(15, 3.0, 1.0, 45.0)
    np.testing.assert_allclose(k45, k45.T, atol=1e-7)
    assert not np.allclose(k45, k45[::-1])
    # generalized with beta 1 is the Gaussian; iso Gaussian is separable (rank 1)
    np.testing.assert_allclose(
        K.generalized_gaussian_kernel(15, 3.0, 1.0, 20.0, 1.0),
        K.anisotropic_gaussian_kernel(15, 3.0, 1.0, 20.0),
        atol=1e-7,
    )
    s = np.linalg.svd(K.isotropic_gaussian_kernel(21, 2.0).astype(np.float64), compute_uv=False)
    assert s[1] < 1e-6 * s[0]


def test_plateau_is_flatter_and_generalized_beta_controls_tails() -> None:
    g = K.isotropic_gaussian_kernel(21, 2.0)
    p = K.plateau_kernel(21, 2.0, 2.0, 0.0, 2.0)
    heavy = K.generalized_gaussian_kernel(21, 2.0, 2.0, 0.0, 0.5)
    assert p[10, 0] > g[10, 0] and heavy[10, 0] > g[10, 0]  # heavier tails than the Gaussian


def test_sinc_has_negative_lobes_and_j1_is_accurate() -> None:
    k = K.sinc_kernel(21, 0.3)
    assert k.min() < 0 < k.max()
    # reference values of J1 (Abramowitz & Stegun table 9.1) and its first zero
    np.testing.assert_allclose(
        K.bessel_j1(np.array([0.0, 1.0, 10.0, 3.8317059702075125])),
        [0.0, 0.44005058574493355, 0.04347274616886144, 0.0],
        atol=1e-12,
    )
    # a full cut-off sinc tends to a delta-like kernel with most mass at the centre
    assert K.sinc_kernel(21, 1.0)[10, 10] > 0.5


def test_offset_moves_the_kernel_centroid() -> None:
    k = K.isotropic_gaussian_kernel(25, 1.5, offset=1.5)
    ax = np.arange(-12, 13)
    assert abs(float((k.sum(0) * ax).sum()) - 1.5) < 1e-3
    assert abs(float((k.sum(1) * ax).sum()) - 1.5) < 1e-3


@pytest.mark.parametrize("bad", [4, 0, -3, 65, 3.5])
def test_bad_kernel_sizes_raise(bad) -> None:
    with pytest.raises(ValueError, match="odd"):
        K.isotropic_gaussian_kernel(bad, 1.0)


def test_bad_kernel_args_raise() -> None:
    with pytest.raises(ValueError, match="cutoff"):
        K.sinc_kernel(7, 1.5)
    with pytest.raises(ValueError, match="unknown kernel"):
        K.make_kernel("box", 7)


# --------------------------------------------------------------------------------------- blur


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_blur_shape_dtype_and_constant_preserved(dtype) -> None:
    img = np.full((33, 47, 3), 120, np.uint8)
    img = img if dtype == np.uint8 else ops.to_float(img)
    for kind, kw in KERNEL_CASES:
        out = ops.blur(img, K.make_kernel(kind, 11, **kw))
        assert out.shape == img.shape and out.dtype == img.dtype
        np.testing.assert_allclose(
            out.astype(np.float32), img.astype(np.float32), atol=1e-4 if dtype == np.float32 else 0
        )


def test_blur_separable_path_matches_filter2d() -> None:
    x = ops.to_float(gradient_rgb(64, 72))
    for k in (K.isotropic_gaussian_kernel(21, 2.5), K.anisotropic_gaussian_kernel(15, 3.0, 0.7, 0.0)):
        assert ops._separable_terms(k) is not None  # the fast path is taken for these
        ref = cv2.filter2D(x, -1, k, borderType=cv2.BORDER_REFLECT_101)
        np.testing.assert_allclose(ops.blur(x, k), ref, atol=2e-6)
    k = K.sinc_kernel(21, 0.4)  # not low-rank: full 2-D path
    assert ops._separable_terms(k) is None
    np.testing.assert_allclose(
        ops.blur(x, k), cv2.filter2D(x, -1, k, borderType=cv2.BORDER_REFLECT_101), atol=1e-6
    )


def test_blur_smooths_and_does_not_touch_input() -> None:
    img = gradient_rgb(48, 48)
    before = img.copy()
    out = ops.blur(img, K.isotropic_gaussian_kernel(9, 2.0))
    assert np.array_equal(img, before)
    assert (
        np.abs(np.diff(out.astype(float), axis=1)).mean() < np.abs(np.diff(img.astype(float), axis=1)).mean()
    )
    with pytest.raises(ValueError, match="odd square"):
        ops.blur(img, np.ones((4, 4), np.float32))


# ------------------------------------------------------------------------------------- resize


@pytest.mark.parametrize("interp", list(ops.INTERPOLATIONS))
@pytest.mark.parametrize("size", [(17, 23), (64, 80), (131, 97), (1, 5)])
def test_resize_exact_size(interp: str, size: tuple[int, int]) -> None:
    for img in (gradient_rgb(51, 61), ops.to_float(gradient_rgb(51, 61))):
        out = ops.resize(img, size, interp)
        assert out.shape == (*size, 3) and out.dtype == img.dtype


def test_resize_same_size_copies_and_bad_args_raise() -> None:
    img = gradient_rgb(20, 20)
    out = ops.resize(img, (20, 20), "bicubic")
    assert np.array_equal(out, img) and out is not img
    with pytest.raises(ValueError, match="interpolation"):
        ops.resize(img, (10, 10), "spline36")
    with pytest.raises(ValueError, match="at least 1x1"):
        ops.resize(img, (0, 10), "area")


def test_bad_images_raise() -> None:
    with pytest.raises(ValueError, match="HxWx3"):
        ops.jpeg(np.zeros((8, 8), np.uint8), 50)
    with pytest.raises(ValueError, match="HxWx3"):
        ops.blur(np.zeros((8, 8, 3), np.float64), K.isotropic_gaussian_kernel(3, 1.0))


# -------------------------------------------------------------------------------------- noise


def test_noise_field_is_seeded_standard_normal() -> None:
    z = ops.noise_field(7, (128, 96, 3))
    assert z.shape == (128, 96, 3) and z.dtype == np.float32
    assert np.array_equal(z, ops.noise_field(7, (128, 96, 3)))
    assert not np.array_equal(z, ops.noise_field(8, (128, 96, 3)))
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02
    # no correlation between neighbours (Box-Muller pairs are stored far apart)
    assert abs(np.corrcoef(z.ravel()[:-1], z.ravel()[1:])[0, 1]) < 0.02


@pytest.mark.parametrize("sigma", [2.0, 10.0, 25.0])
def test_gaussian_noise_std_matches_sigma(sigma: float) -> None:
    img = np.full((192, 192, 3), 128, np.uint8)
    out = ops.gaussian_noise(ops.to_float(img), sigma, seed=1) * 255
    assert abs(float(out.std()) - sigma) < 0.03 * sigma + 0.05
    assert abs(float(out.mean()) - 128) < 0.3


def test_gaussian_noise_gray_color_correlated_and_same_realisation() -> None:
    img = np.full((96, 96, 3), 100, np.uint8)
    gray = ops.gaussian_noise(img, 10.0, seed=3, gray=True).astype(int)
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    color = ops.gaussian_noise(img, 10.0, seed=3).astype(int)
    assert not np.array_equal(color[..., 0], color[..., 1])
    # one seed, two images of the same size: the same noise field (difference = image difference)
    other = ops.gaussian_noise(img + 37, 10.0, seed=3).astype(int)
    assert np.array_equal(other - color, np.full_like(color, 37))
    cov = [[100.0, 60.0, 20.0], [60.0, 100.0, 40.0], [20.0, 40.0, 50.0]]
    c = ops.gaussian_noise(ops.to_float(np.full((256, 256, 3), 128, np.uint8)), 10.0, seed=4, cov=cov)
    measured = np.cov((c * 255).reshape(-1, 3).T)
    np.testing.assert_allclose(measured, cov, atol=4.0)


def test_noise_clips_and_keeps_dtype() -> None:
    x = ops.to_float(np.full((32, 32, 3), 250, np.uint8))
    out = ops.gaussian_noise(x, 30.0, seed=0)
    assert out.dtype == np.float32 and out.max() <= 1.0 and out.min() >= 0.0
    u = ops.poisson_noise(np.full((32, 32, 3), 250, np.uint8), 3.0, seed=0)
    assert u.dtype == np.uint8


def test_poisson_noise_is_signal_dependent() -> None:
    levels, scale = 256, 2.0
    for value in (16, 64, 200):
        x = ops.to_float(np.full((160, 160, 3), value, np.uint8))
        out = ops.poisson_noise(x, scale, seed=5, levels=levels)
        expected = scale * math.sqrt(value / 255 / levels) * 255
        assert abs(float((out * 255).std()) - expected) < 0.05 * expected
    black = np.zeros((16, 16, 3), np.uint8)
    assert np.array_equal(ops.poisson_noise(black, 3.0, seed=5), black)
    g = ops.poisson_noise(np.full((64, 64, 3), 90, np.uint8), 3.0, seed=5, gray=True).astype(int)
    assert np.array_equal(g[..., 0], g[..., 2]) and g.std() > 0


# --------------------------------------------------------------------------------------- JPEG


def test_jpeg_psnr_rises_with_quality() -> None:
    img = gradient_rgb(96, 96, seed=2)
    scores = [psnr(img, ops.jpeg(img, q), y=False) for q in (10, 30, 50, 70, 90)]
    assert all(a < b for a, b in zip(scores, scores[1:], strict=False)), scores
    f = ops.jpeg(ops.to_float(img), 50)
    assert f.dtype == np.float32 and f.shape == img.shape and 0 <= f.min() and f.max() <= 1
    with pytest.raises(ValueError, match="quality"):
        ops.jpeg(img, 0)


def test_jpeg_keeps_channel_order() -> None:
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 220
    out = ops.jpeg(red, 90).astype(int)
    assert out[..., 0].mean() > 200 and out[..., 2].mean() < 30


# --------------------------------------------------------------------------- nearest + realign


def test_nearest_downsample_and_realign() -> None:
    img = gradient_rgb(61, 47)
    small = ops.nearest_downsample(img, 4)
    assert small.shape == (16, 12, 3) and np.array_equal(small, img[::4, ::4])
    # a smooth horizontal ramp: after [::f] and a resize back, the content sits (f-1)/2 px off;
    # the realign shift removes that offset
    ramp = np.repeat(np.repeat(np.linspace(0, 1, 96, dtype=np.float32)[None, :, None], 64, 0), 3, 2)
    for f in (2, 4, 6):
        back = ops.resize(ops.nearest_downsample(ramp, f), (64, 96), "bilinear")
        d = ops.realign_shift(f, 96, 96)
        assert d == (f - 1) / 2
        fixed = ops.subpixel_shift(back, 0.0, d)
        inner = slice(3 * f, 96 - 3 * f)
        assert np.abs(fixed[:, inner] - ramp[:, inner]).max() < 1e-4
        assert np.abs(back[:, inner] - ramp[:, inner]).max() > 0.4 * d / 96


def test_subpixel_shift_integer_moves_content() -> None:
    img = ops.to_float(gradient_rgb(20, 30))
    out = ops.subpixel_shift(img, 2.0, 3.0)
    np.testing.assert_allclose(out[:10, :20], img[2:12, 3:23], atol=1e-6)


# ------------------------------------------------------------------ params: sample, then apply


def test_sample_then_apply_each_op_from_plain_ranges() -> None:
    from redegkit.degrade import params as P
    from redegkit.degrade import sampling as S

    rng = np.random.default_rng(0)
    img = gradient_rgb(40, 56)
    ctx = P.ApplyContext(input_hw=(40, 56), output_hw=(20, 28))
    cases = [
        (S.sample_blur, {"kernel": "generalized_aniso", "size": [5, 9], "sigma": [0.5, 2], "beta": [0.5, 4]}),
        (S.sample_blur, {"kernel": "sinc", "size": 7, "cutoff": [0.3, 0.9]}),
        (S.sample_resize, {"ref": "output", "factor": [0.5, 1.0], "interp": {"area": 1, "lanczos": 1}}),
        (S.sample_nearest_down, {"factor": [2, 3]}),
        (S.sample_gaussian_noise, {"sigma": [1, 10], "gray_p": 0.5}),
        (S.sample_gaussian_noise, {"sigma": 8, "correlated": True}),
        (S.sample_poisson_noise, {"scale": [0.5, 2]}),
        (S.sample_jpeg, {"quality": [20, 90]}),
    ]
    for sample, ranges in cases:
        p = sample(rng, ranges)
        # params are plain data: a JSON round trip gives the same object and the same pixels
        again = type(p).model_validate_json(p.model_dump_json())
        assert again == p
        out = P.apply_op(img, p, ctx)
        assert out.dtype == np.uint8 and out.ndim == 3
        assert np.array_equal(out, P.apply_op(img, again, ctx))
    s = S.sample_blur(rng, {"kernel": "aniso", "size": [5, 9], "sigma": [0.5, 2]})
    assert s.size in (5, 7, 9) and 0.5 <= s.sigma_x <= 2 and -180 <= s.angle <= 180
    r = S.sample_resize(rng, {"ref": "output", "factor": [0.5, 1.0]})
    assert P.apply_op(img, r, ctx).shape[:2] == P.resize_target((20, 28), r.factor)
    with pytest.raises(ValueError, match="ApplyContext"):
        P.apply_op(img, r)


def test_color_op_gain_offset_saturation_contrast_exact() -> None:
    img = gradient_rgb(32, 32)
    x = img.astype(np.float32) / 255
    out = ops.color(x, gain=(1.1, 1.0, 0.8), offset=(10 / 255, 0.0, -5 / 255))
    want = np.clip(x * np.array([1.1, 1.0, 0.8], np.float32) + np.array([10, 0, -5], np.float32) / 255, 0, 1)
    assert np.allclose(out, want, atol=1e-6)
    grey = ops.color(x, saturation=0.0)  # saturation 0: every channel is the luma
    assert np.allclose(grey[..., 0], grey[..., 1], atol=1e-6) and np.allclose(
        grey[..., 1], grey[..., 2], atol=1e-6
    )
    faded = ops.color(x, contrast=0.5)  # contrast halves the distance to mid-grey
    assert np.allclose(faded - 0.5, (x - 0.5) * 0.5, atol=1e-6)
    assert ops.color(img).dtype == np.uint8 and np.array_equal(ops.color(img), img)


def test_sharpen_adds_halos_and_zero_amount_is_identity() -> None:
    step = np.zeros((32, 32, 3), np.float32)
    step[:, 16:] = 0.6
    step += 0.2
    out = ops.sharpen(step, amount=1.0, sigma=1.5)
    # an unsharp mask overshoots on both sides of the edge: darker before it, brighter after it
    assert out[:, 15].min() < 0.2 - 0.05 and out[:, 16].max() > 0.8 + 0.05
    assert np.allclose(ops.sharpen(step, amount=0.0, sigma=1.0), step)
    with pytest.raises(ValueError, match="sigma"):
        ops.sharpen(step, amount=1.0, sigma=0.0)


def test_color_and_sharpen_in_a_preset_replay_from_json() -> None:
    from redegkit.degrade import Degradation, apply_degradation, get_preset, sample_degradation

    user = {
        "p": {
            "steps": [
                {"op": "color", "gain_r": [1.0, 1.2], "offset_b": [-10, 0], "contrast": 0.9},
                {"op": "sharpen", "amount": [0.5, 1.5], "sigma": 1.0},
            ]
        }
    }
    params = sample_degradation(get_preset("p", user), np.random.default_rng(4))
    assert [op.op for op in params.ops] == ["color", "sharpen"]
    assert 1.0 <= params.ops[0].gain[0] <= 1.2 and params.ops[0].gain[1] == 1.0
    again = Degradation.from_json(params.to_json())
    img = gradient_rgb(24, 24)
    assert np.array_equal(apply_degradation(img, params), apply_degradation(img, again))
