"""Tone and colour ops: quantisation, dithering, halftone screens, chroma subsampling, channel shift,
tone curves.

Every op takes an RGB image, ``uint8`` or ``float32`` ([0, 1]), shape ``HxWx3``, and returns the
same dtype and shape; nothing here draws random numbers (a dither's pattern is part of its params).
"""

from __future__ import annotations

import math
from functools import cache

import cv2
import numpy as np
from PIL import Image

from . import colorspace as C
from .ops import _GRAY_WEIGHTS, _same_dtype, check_image, to_float, to_uint8

QUANTIZE_MODES = ("bits", "levels", "palette")
PALETTE_METHODS: dict[str, Image.Quantize] = {
    "median_cut": Image.Quantize.MEDIANCUT,
    "max_coverage": Image.Quantize.MAXCOVERAGE,
    "octree": Image.Quantize.FASTOCTREE,
}
DITHER_METHODS = ("bayer", "floyd_steinberg")
HALFTONE_MODES = ("mono", "cmyk")
# classic screen angles of offset printing, added to the drawn base angle (cyan, magenta, yellow, black)
CMYK_ANGLES = (15.0, 75.0, 0.0, 45.0)


# ---------------------------------------------------------------------------------- quantisation


def levels_round(x: np.ndarray, levels: int) -> np.ndarray:
    """Round float values in [0, 1] to the nearest of ``levels`` evenly spaced values (0 and 1 kept)."""
    n = levels - 1
    return np.floor(np.clip(x, 0.0, 1.0) * n + 0.5) / n


def quantize(
    img: np.ndarray,
    mode: str,
    *,
    bits: int = 8,
    levels: int = 256,
    colors: int = 256,
    method: str = "median_cut",
) -> np.ndarray:
    """Fewer colours, no dithering (banding, posterisation).

    ``bits``: keep the top ``bits`` bits of each 8-bit channel (Pillow's ``ImageOps.posterize``);
    ``levels``: round each channel to ``levels`` evenly spaced values; ``palette``: an adaptive
    palette of ``colors`` colours for the image (Pillow's ``quantize`` with ``method``, nearest
    colour, no dithering), the GIF / PNG-8 look.
    """
    check_image(img)
    if mode == "bits":
        if not 1 <= bits <= 8:
            raise ValueError(f"quantize bits must be in [1, 8], got {bits}")
        mask = np.uint8((0xFF << (8 - bits)) & 0xFF)
        return _same_dtype(to_float(to_uint8(img) & mask), img)
    if mode == "levels":
        if not 2 <= levels <= 256:
            raise ValueError(f"quantize levels must be in [2, 256], got {levels}")
        return _same_dtype(levels_round(to_float(img), levels).astype(np.float32), img)
    if mode == "palette":
        if not 2 <= colors <= 256 or method not in PALETTE_METHODS:
            raise ValueError(
                f"palette needs colors in [2, 256] and a method of {', '.join(PALETTE_METHODS)}, "
                f"got {colors}, {method!r}"
            )
        im = Image.fromarray(to_uint8(img)).quantize(
            colors=int(colors), method=PALETTE_METHODS[method], kmeans=0, dither=Image.Dither.NONE
        )
        out = np.asarray(im.convert("RGB"))
        return out if img.dtype == np.uint8 else to_float(out)
    raise ValueError(f"unknown quantize mode {mode!r}; known: {', '.join(QUANTIZE_MODES)}")


# ------------------------------------------------------------------------------------- dithering


@cache
def bayer_matrix(n: int) -> np.ndarray:
    """The ``n x n`` Bayer index matrix (n a power of 2), values 0 .. n²-1:
    ``B(2n) = [[4B, 4B + 2], [4B + 3, 4B + 1]]`` from ``B(1) = [[0]]``."""
    if n < 1 or n & (n - 1):
        raise ValueError(f"a Bayer matrix size is a power of 2, got {n}")
    b = np.zeros((1, 1), np.int64)
    while b.shape[0] < n:
        b = np.block([[4 * b, 4 * b + 2], [4 * b + 3, 4 * b + 1]])
    b.setflags(write=False)
    return b


def ordered_dither(x: np.ndarray, levels: int, size: int) -> np.ndarray:
    """Ordered (Bayer) dithering of float values in [0, 1] (any ``HxW`` or ``HxWxC``) to ``levels``
    values: ``floor(v (levels - 1) + t) / (levels - 1)`` with the threshold ``t = (B + 0.5) / n²``
    of the pixel's place in the tiled ``n x n`` Bayer matrix ``B`` (top-left = B[0, 0])."""
    n = levels - 1
    b = bayer_matrix(size)
    h, w = x.shape[:2]
    t = (np.tile(b, (h // size + 1, w // size + 1))[:h, :w] + 0.5) / (size * size)
    if x.ndim == 3:
        t = t[:, :, None]
    return np.clip(np.floor(np.clip(x, 0.0, 1.0) * n + t), 0, n) / n


def error_diffusion(x: np.ndarray, levels: int) -> np.ndarray:
    """Floyd-Steinberg error diffusion of float values in [0, 1] (``HxW`` or ``HxWxC``) to ``levels``
    values. Raster order (left to right, top to bottom, no serpentine); each pixel's quantisation
    error goes 7/16 right, 3/16 down-left, 5/16 down, 1/16 down-right; error leaving the image is
    dropped. Ties round up. Exact float64 arithmetic of that definition.

    A pixel depends only on pixels (x-1, y), (x-1..x+1, y-1), so every pixel of an anti-diagonal
    ``x + 2y = t`` can be processed at once: W + 2H vectorised steps instead of W·H scalar ones.
    """
    squeeze = x.ndim == 2
    v = np.clip(x.astype(np.float64), 0.0, 1.0)
    if squeeze:
        v = v[:, :, None]
    h, w, c = v.shape
    n = levels - 1
    err = np.zeros((h + 1, w + 2, c))  # err[y, x + 1]: error arriving at pixel (y, x)
    out = np.empty_like(v)
    ys_all = np.arange(h)
    for t in range(w + 2 * (h - 1)):
        ys = ys_all[(t - 2 * ys_all >= 0) & (t - 2 * ys_all < w)]
        xs = t - 2 * ys
        old = v[ys, xs] + err[ys, xs + 1]
        new = np.clip(np.floor(old * n + 0.5), 0, n) / n
        out[ys, xs] = new
        e = old - new
        err[ys, xs + 2] += e * (7 / 16)
        err[ys + 1, xs] += e * (3 / 16)
        err[ys + 1, xs + 1] += e * (5 / 16)
        err[ys + 1, xs + 2] += e * (1 / 16)
    return out[:, :, 0] if squeeze else out


def dither(img: np.ndarray, method: str, levels: int, *, size: int = 4, gray: bool = False) -> np.ndarray:
    """Quantise to ``levels`` values per channel with a dither: ``bayer`` (ordered, an ``size x size``
    matrix) or ``floyd_steinberg`` (error diffusion). ``gray``: dither the BT.601 luma and return it
    in all three channels (1-bit newsprint, e-ink, old displays)."""
    check_image(img)
    if not 2 <= levels <= 256:
        raise ValueError(f"dither levels must be in [2, 256], got {levels}")
    x = to_float(img)
    if gray:
        x = x @ _GRAY_WEIGHTS
    if method == "bayer":
        out = ordered_dither(x, levels, size)
    elif method == "floyd_steinberg":
        out = error_diffusion(x, levels)
    else:
        raise ValueError(f"unknown dither method {method!r}; known: {', '.join(DITHER_METHODS)}")
    out = out.astype(np.float32)
    if gray:
        out = np.repeat(out[:, :, None], 3, axis=2)
    return _same_dtype(out, img)


# -------------------------------------------------------------------------------------- halftone


_LUT_SIZE = 4096


def _spot(fu: np.ndarray, fv: np.ndarray) -> np.ndarray:
    """Round-dot spot function in [0, 1]: 0 at the cell centre, 1 at its corners (periodic, period 1)."""
    return 1.0 - (np.cos(2 * np.pi * fu) + np.cos(2 * np.pi * fv) + 2.0) / 4.0


@cache
def _spot_to_threshold() -> np.ndarray:
    """Lookup table: spot value (in 4096 bins) -> the share of a cell with a lower spot value.

    Thresholding the coverage against this (instead of the raw spot value) inks exactly a share k
    of a cell at flat coverage k."""
    f = (np.arange(512) + 0.5) / 512
    u, v = np.meshgrid(f, f)
    s = np.sort(_spot(u, v).ravel())
    centres = (np.arange(_LUT_SIZE) + 0.5) / _LUT_SIZE
    lut = (np.searchsorted(s, centres) / s.size).astype(np.float32)
    lut.setflags(write=False)
    return lut


def screen(coverage: np.ndarray, cell: float, angle: float, softness: float = 0.5) -> np.ndarray:
    """Amplitude-modulated halftone of ink ``coverage`` in [0, 1] (``HxW``): round dots on a grid of
    period ``cell`` pixels rotated by ``angle`` degrees (pixel centres sample the screen). The
    threshold is the spot function mapped through its own distribution over a cell, so a flat
    coverage k inks a share k of each cell. ``softness``: the edge width of a dot in pixels (0 =
    hard binary edges). Returns the ink amount, float32 in [0, 1]."""
    h, w = coverage.shape
    a = math.radians(angle)
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    u = (xs * np.float32(math.cos(a)) + ys * np.float32(math.sin(a))) / np.float32(cell)
    v = (ys * np.float32(math.cos(a)) - xs * np.float32(math.sin(a))) / np.float32(cell)
    spot = _spot(u, v)
    idx = np.clip((spot * _LUT_SIZE).astype(np.int32), 0, _LUT_SIZE - 1)
    threshold = _spot_to_threshold()[idx]
    if softness <= 0:
        return (coverage > threshold).astype(np.float32)
    # across a dot's edge the threshold changes by about 4 / cell per pixel
    width = np.float32(softness * 4.0 / cell)
    return np.clip((coverage - threshold) / width + np.float32(0.5), 0.0, 1.0).astype(np.float32)


def halftone(img: np.ndarray, mode: str, cell: float, angle: float, softness: float = 0.5) -> np.ndarray:
    """Printed halftone. ``mono``: one screen of the luma's darkness (screentone, newsprint), grey out;
    ``cmyk``: cyan, magenta, yellow and black screens (black = min(C, M, Y), full grey-component
    replacement) at ``angle`` + 15, 75, 0, 45 degrees, printed over each other on white."""
    check_image(img)
    if cell < 1.5:
        raise ValueError(f"halftone cell must be >= 1.5 pixels, got {cell}")
    x = to_float(img)
    if mode == "mono":
        ink = screen(1.0 - x @ _GRAY_WEIGHTS, cell, angle, softness)
        out = np.repeat((1.0 - ink)[:, :, None], 3, axis=2)
    elif mode == "cmyk":
        cmy = 1.0 - x
        k = cmy.min(axis=2)
        inks = [screen(cmy[:, :, i] - k, cell, angle + CMYK_ANGLES[i], softness) for i in range(3)]
        black = screen(k, cell, angle + CMYK_ANGLES[3], softness)
        out = np.dstack([(1.0 - ink) * (1.0 - black) for ink in inks])
    else:
        raise ValueError(f"unknown halftone mode {mode!r}; known: {', '.join(HALFTONE_MODES)}")
    return _same_dtype(out.astype(np.float32), img)


# ------------------------------------------------------------------------------- chroma and shift


def chroma(
    img: np.ndarray, mode: str, matrix: str = "bt601", down: str = "box", up: str = "bilinear"
) -> np.ndarray:
    """Chroma subsampling on its own (:func:`redegkit.degrade.colorspace.chroma_subsample`, full-range
    8-bit Y'CbCr): colour bleeding at edges, blocky chroma with ``up = "nearest"``."""
    check_image(img)
    out = C.chroma_subsample(to_float(img), mode, matrix, down, up, full_range=True)
    return _same_dtype(np.clip(out, 0.0, 1.0), img)


def channel_shift(
    img: np.ndarray,
    shift_r: tuple[float, float] = (0.0, 0.0),
    shift_b: tuple[float, float] = (0.0, 0.0),
    scale_r: float = 1.0,
    scale_b: float = 1.0,
) -> np.ndarray:
    """Misregistered colour planes and lateral chromatic aberration: the red and blue planes are
    magnified by ``scale_r`` / ``scale_b`` about the image centre, then moved by ``shift_r`` /
    ``shift_b`` = ``(dy, dx)`` pixels (content moves by +d); green stays. Bilinear, edges repeated."""
    check_image(img)
    x = to_float(img)
    h, w = x.shape[:2]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    out = x.copy()
    for c, (dy, dx), s in ((0, shift_r, scale_r), (2, shift_b, scale_b)):
        if s <= 0:
            raise ValueError(f"channel scale must be > 0, got {s}")
        if (dy, dx) == (0.0, 0.0) and s == 1.0:
            continue
        # inverse map: src = centre + (dst - d - centre) / s
        m = np.array([[1 / s, 0.0, cx - (cx + dx) / s], [0.0, 1 / s, cy - (cy + dy) / s]])
        out[:, :, c] = cv2.warpAffine(
            np.ascontiguousarray(x[:, :, c]),
            m,
            (w, h),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
    return _same_dtype(out, img)


def tone(
    img: np.ndarray,
    gamma: float = 1.0,
    contrast: float = 1.0,
    brightness: float = 0.0,
    black: float = 0.0,
    white: float = 1.0,
) -> np.ndarray:
    """A tone curve: ``v = x ** gamma``, then ``contrast`` about mid-grey and ``brightness`` added,
    clipped, then mapped onto the output range ``[black, white]`` (a raised black / lowered white:
    faded prints, video levels shown at the wrong range). ``gamma`` > 1 darkens the mid-tones."""
    check_image(img)
    if gamma <= 0 or not 0 <= black < white <= 1:
        raise ValueError(f"tone needs gamma > 0 and 0 <= black < white <= 1, got {gamma}, {black}, {white}")
    x = to_float(img)
    v = np.power(np.maximum(x, 0.0), np.float32(gamma)) if gamma != 1.0 else x
    v = np.clip((v - np.float32(0.5)) * np.float32(contrast) + np.float32(0.5 + brightness), 0.0, 1.0)
    return _same_dtype((v * np.float32(white - black) + np.float32(black)).astype(np.float32), img)
