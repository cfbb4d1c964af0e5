"""Tone and colour ops on small hand-computed arrays and against independent references:
quantisation (Pillow's posterize), Bayer and Floyd-Steinberg dithering, halftone screens, chroma
subsampling (OpenCV's Y'CbCr), channel shift, tone curves."""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from redegkit.degrade import colorspace as C
from redegkit.degrade import ops
from redegkit.degrade import tone as T

from .conftest import gradient_rgb

# ----------------------------------------------------------------------------------- quantize


@pytest.mark.parametrize("bits", [1, 3, 5, 8])
def test_quantize_bits_equals_pillow_posterize(bits: int) -> None:
    img = gradient_rgb(40, 56, seed=3)
    want = np.asarray(ImageOps.posterize(Image.fromarray(img), bits))
    assert np.array_equal(T.quantize(img, "bits", bits=bits), want)


def test_quantize_levels_and_palette() -> None:
    img = gradient_rgb(48, 48)
    out = T.quantize(img, "levels", levels=5)
    # 5 levels: 0, 63.75, 127.5, 191.25, 255 rounded to 8 bits
    assert set(np.unique(out)) <= {0, 64, 128, 191, 255}
    x = np.array([[[0.1, 0.13, 0.9]]], np.float32)
    assert np.allclose(T.quantize(x, "levels", levels=5), [[[0.0, 0.25, 1.0]]])
    for colors in (4, 17):
        pal = T.quantize(img, "palette", colors=colors, method="median_cut")
        assert len(np.unique(pal.reshape(-1, 3), axis=0)) <= colors
        assert pal.shape == img.shape and pal.dtype == np.uint8
    assert len(np.unique(T.quantize(img, "palette", colors=8, method="octree").reshape(-1, 3), axis=0)) <= 8
    with pytest.raises(ValueError, match="mode"):
        T.quantize(img, "kmeans")


# ------------------------------------------------------------------------------------ dithering


def test_bayer_matrix_is_the_standard_one() -> None:
    assert T.bayer_matrix(2).tolist() == [[0, 2], [3, 1]]
    assert T.bayer_matrix(4).tolist() == [[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]]
    assert sorted(T.bayer_matrix(8).ravel()) == list(range(64))
    with pytest.raises(ValueError, match="power of 2"):
        T.bayer_matrix(3)


def test_ordered_dither_hand_computed() -> None:
    # 2x2, grey 0.5 to 2 levels: thresholds (B + 0.5) / 4 = [[.125, .625], [.875, .375]];
    # out = floor(0.5 + t) -> 1 where t >= 0.5
    assert T.ordered_dither(np.full((2, 2), 0.5), 2, 2).tolist() == [[0, 1], [1, 0]]
    # 4x4, grey 0.3: floor(0.3 + (B + 0.5) / 16) = 1 where B >= 11 (B = 11, 12, 13, 14, 15)
    want = [[0, 0, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [1, 0, 1, 0]]
    assert T.ordered_dither(np.full((4, 4), 0.3), 2, 4).tolist() == want
    # 3 levels, value 0.7: 0.7 * 2 = 1.4 -> 1 + [0.4 + t >= 1] -> 1.0 where t >= 0.6 (B = 2, 3 of 2x2)
    out = T.ordered_dither(np.full((2, 4), 0.7), 3, 2)
    assert out.tolist() == [[0.5, 1.0, 0.5, 1.0], [1.0, 0.5, 1.0, 0.5]]


def test_floyd_steinberg_hand_computed() -> None:
    # one row of 0.3, 2 levels: errors only go right (7/16)
    #   p0 0.3 -> 0, e .3;  p1 .3 + .13125 = .43125 -> 0, e .43125;
    #   p2 .3 + .18867 = .48867 -> 0, e .48867;  p3 .3 + .21379 = .51379 -> 1
    assert T.error_diffusion(np.full((1, 4), 0.3), 2).tolist() == [[0, 0, 0, 1]]
    # 2x2 of 0.5: p00 .5 -> 1 (ties round up), e -.5: right .5 - 7/32, down .5 - 5/32, down-right .5 - 1/32
    #   p01 .28125 -> 0, e .28125: down-left (1,0) += 3/16 e, down (1,1) += 5/16 e
    #   p10 .34375 + .052734375 = .396484375 -> 0, e -> right (1,1) += 7/16 e
    #   p11 .46875 + .087890625 + .173461914 = .730102539 -> 1
    assert T.error_diffusion(np.full((2, 2), 0.5), 2).tolist() == [[1, 0], [0, 1]]


def _fs_reference(a: np.ndarray, levels: int) -> np.ndarray:
    """The textbook scalar loop in exact rational arithmetic (an independent implementation)."""
    h, w = a.shape
    v = [[Fraction(float(a[y, x])) for x in range(w)] for y in range(h)]
    n = levels - 1
    out = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            old = v[y][x]
            q = min(max((old * n + Fraction(1, 2)).__floor__(), 0), n)
            new = Fraction(q, n)
            out[y, x] = float(new)
            e = old - new
            for dy, dx, wgt in ((0, 1, 7), (1, -1, 3), (1, 0, 5), (1, 1, 1)):
                if 0 <= y + dy < h and 0 <= x + dx < w:
                    v[y + dy][x + dx] += e * wgt / 16
    return out


@pytest.mark.parametrize("levels", [2, 3, 6])
def test_floyd_steinberg_wavefront_equals_the_scalar_loop(levels: int) -> None:
    a = np.random.default_rng(levels).random((7, 11))
    assert np.array_equal(T.error_diffusion(a, levels), _fs_reference(a, levels))


def test_dithering_keeps_the_mean_and_its_options() -> None:
    ramp = np.repeat(np.linspace(0, 255, 64, dtype=np.float32)[None, :], 48, 0)
    img = np.repeat(ramp[:, :, None], 3, 2).round().astype(np.uint8)
    for method in ("bayer", "floyd_steinberg"):
        out = T.dither(img, method, 2, size=8)
        assert set(np.unique(out)) <= {0, 255}
        # local means follow the ramp: compare 8-column band averages
        bands = out.reshape(48, 8, 8, 3).mean(axis=(0, 2, 3))
        want = img.reshape(48, 8, 8, 3).mean(axis=(0, 2, 3))
        assert np.abs(bands - want).max() < 20, (method, bands - want)
    g = T.dither(gradient_rgb(32, 32), "floyd_steinberg", 2, gray=True)
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 0], g[..., 2])
    with pytest.raises(ValueError, match="levels"):
        T.dither(img, "bayer", 1)


# ------------------------------------------------------------------------------------- halftone


@pytest.mark.parametrize("coverage", [0.1, 0.35, 0.5, 0.8])
def test_halftone_screen_inks_the_coverage(coverage: float) -> None:
    # (a screen aligned with the pixel grid samples each cell at a few fixed phases and can only
    # approximate a coverage; printed screens are never aligned with the scanner's grid)
    flat = np.full((240, 240), coverage, np.float32)
    for cell, angle in ((6.0, 15.0), (4.5, 37.0), (7.3, 75.0)):
        assert abs(T.screen(flat, cell, angle, 0.0).mean() - coverage) < 0.02


def test_halftone_geometry_and_modes() -> None:
    flat = np.full((64, 64), 0.4, np.float32)
    ink = T.screen(flat, 8.0, 0.0, 0.0)
    assert set(np.unique(ink)) == {0.0, 1.0}
    assert np.array_equal(ink[:, :-8], ink[:, 8:]) and np.array_equal(ink[:-8], ink[8:])  # period 8
    rot = T.screen(flat, 8.0, 90.0, 0.0)
    assert np.array_equal(rot[:, :-8], rot[:, 8:])
    white = np.full((32, 32, 3), 255, np.uint8)
    black = np.zeros((32, 32, 3), np.uint8)
    for mode in ("mono", "cmyk"):
        assert np.array_equal(T.halftone(white, mode, 5.0, 15.0, 0.0), white)
        assert np.array_equal(T.halftone(black, mode, 5.0, 15.0, 0.0), black)
    mono = T.halftone(gradient_rgb(48, 48), "mono", 4.0, 45.0)
    assert np.array_equal(mono[..., 0], mono[..., 2])
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 255
    out = T.halftone(red, "cmyk", 5.0, 0.0, 0.0)  # magenta + yellow dots, no cyan, no black
    assert out[..., 0].min() == 255 and out[..., 1].mean() < 10 and out[..., 2].mean() < 10


# ------------------------------------------------------------------------------- chroma, shift


def test_ycbcr_matches_opencv_and_round_trips() -> None:
    img = gradient_rgb(24, 40, seed=5)
    ours = np.rint(C.rgb_to_ycbcr(ops.to_float(img), "bt601", full_range=True))
    ref = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb).astype(np.float32)  # JPEG's full-range BT.601
    # OpenCV rounds in 14-bit fixed point: at most one level apart
    assert np.abs(ours[..., 0] - ref[..., 0]).max() <= 1
    assert np.abs(ours[..., 1] - ref[..., 2]).max() <= 1 and np.abs(ours[..., 2] - ref[..., 1]).max() <= 1
    x = np.random.default_rng(0).random((9, 7, 3)).astype(np.float32)
    for m in C.MATRICES:
        for full in (True, False):
            assert np.abs(C.ycbcr_to_rgb(C.rgb_to_ycbcr(x, m, full), m, full) - x).max() < 1e-5
    # limited range: white is Y 235, black Y 16; BT.709's luma of pure green is 0.7152
    y = C.rgb_to_ycbcr(np.array([[[1, 1, 1], [0, 0, 0], [0, 1, 0]]], np.float32), "bt709", full_range=False)
    assert np.allclose(y[0, :, 0], [235, 16, 16 + 219 * 0.7152], atol=1e-3)


def test_chroma_box_downsampling_hand_computed() -> None:
    plane = np.arange(12, dtype=np.float32).reshape(3, 4)  # [[0..3], [4..7], [8..11]]
    # 4:2:0 box: 2x2 means; the last block row is completed by repeating row 2
    assert C.downsample_chroma(plane, 2, 2).tolist() == [[2.5, 4.5], [8.5, 10.5]]
    assert C.downsample_chroma(plane, 4, 1).tolist() == [[1.5], [5.5], [9.5]]
    assert C.downsample_chroma(plane, 2, 2, "nearest").tolist() == [[0, 2], [8, 10]]
    assert C.upsample_chroma(np.array([[1.0, 3.0]], np.float32), 2, 1, (1, 3), "nearest").tolist() == [
        [1.0, 1.0, 3.0]
    ]


@pytest.mark.parametrize("mode", list(C.CHROMA_MODES))
def test_chroma_op_keeps_luma_and_blurs_colour(mode: str) -> None:
    stripes = np.zeros((32, 32, 3), np.uint8)
    stripes[:, ::2] = (200, 60, 60)
    stripes[:, 1::2] = (60, 60, 200)
    out = T.chroma(stripes, mode, "bt601", "box", "bilinear")
    fh, _ = C.CHROMA_MODES[mode]
    err = np.abs(out.astype(int) - stripes).mean()
    assert (err < 3) == (fh == 1), (mode, err)  # 1-px vertical stripes survive only without horizontal
    luma = lambda a: a.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)  # noqa: E731
    assert np.abs(luma(out) - luma(stripes)).mean() < 8  # luma is kept (up to clipping of the colours)
    f = T.chroma(ops.to_float(stripes), mode)
    assert f.dtype == np.float32 and f.shape == stripes.shape


def test_channel_shift_moves_and_scales_planes() -> None:
    img = gradient_rgb(40, 48, seed=2)
    out = T.channel_shift(img, shift_r=(2.0, 3.0), shift_b=(-1.0, 0.0))
    assert np.array_equal(out[2:, 3:, 0], img[:-2, :-3, 0])  # content moves by +d
    assert np.array_equal(out[:-1, :, 2], img[1:, :, 2])
    assert np.array_equal(out[..., 1], img[..., 1])
    x = ops.to_float(gradient_rgb(41, 49, seed=2))  # centre pixel (20, 24)
    big = T.channel_shift(x, scale_r=1.05)
    # the pixel 20 px right of the centre shows what lay 20 / 1.05 px right of it (bilinear)
    sx = 24 + 20 / 1.05
    x0 = int(sx)
    want = x[20, x0, 0] * (x0 + 1 - sx) + x[20, x0 + 1, 0] * (sx - x0)
    assert abs(big[20, 44, 0] - want) < 2e-3
    assert big[20, 24, 0] == pytest.approx(x[20, 24, 0], abs=1e-6)
    assert np.allclose(T.channel_shift(x), x)


def test_tone_curve_formula() -> None:
    x = np.array([[[0.0, 0.25, 1.0]]], np.float32)
    assert np.allclose(T.tone(x, gamma=2.0), [[[0.0, 0.0625, 1.0]]])
    assert np.allclose(T.tone(x, contrast=0.5, brightness=0.1), [[[0.35, 0.475, 0.85]]])
    assert np.allclose(T.tone(x, black=0.1, white=0.9), [[[0.1, 0.3, 0.9]]])
    with pytest.raises(ValueError, match="black"):
        T.tone(x, black=0.9, white=0.1)
