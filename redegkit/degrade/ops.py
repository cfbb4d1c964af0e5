"""Pure image degradation ops (numpy/OpenCV).

Every op takes an RGB image, ``uint8`` (0-255) or ``float32`` (nominally [0, 1]), shape
``HxWx3``, and returns the same dtype. Float images are not clipped except where the op itself
saturates (noise, JPEG), so overshoot from bicubic/sinc survives to the next clip, as in the
published pipelines. uint8 results are rounded and clipped. Inputs are never modified.

Noise realisations come only from the ``seed`` argument (:func:`noise_field`: numpy ``SFC64``
uniforms through Box-Muller), so the same seed on two images of the same size gives the same
noise field.
"""

from __future__ import annotations

from typing import Final

import cv2
import numpy as np

INTERPOLATIONS: dict[str, int] = {
    "nearest": cv2.INTER_NEAREST_EXACT,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}
_BORDER = cv2.BORDER_REFLECT_101  # "reflect" without repeating the edge pixel (torch's reflect pad)
_GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 luma, RGB order
# recorded with every noise op: how its field is drawn from the seed
NOISE_BITGEN: Final = "sfc64-boxmuller-f32"


class ImageTooSmallError(ValueError):
    """An image the ops cannot degrade as asked (e.g. a resize to less than 1 px): a property of
    the input, which callers record as a per-input failure, unlike bugs, which must stop a run."""


# ---------------------------------------------------------------------------------- dtype helpers


def check_image(img: np.ndarray, what: str = "image") -> None:
    """Raise ``ValueError`` unless ``img`` is an ``HxWx3`` uint8 or float32 array."""
    ok = isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[2] == 3
    if not ok or img.dtype not in (np.uint8, np.float32):
        got = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
        raise ValueError(f"{what}: expected an RGB HxWx3 uint8 or float32 array, got {got}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ImageTooSmallError(f"{what}: empty image {img.shape}")


def to_float(img: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1]; float32 passes through (no copy)."""
    if img.dtype == np.float32:
        return img
    out = img.astype(np.float32)
    out *= np.float32(1 / 255)
    return out


def to_uint8(x: np.ndarray) -> np.ndarray:
    """float32 [0, 1] -> uint8, clipped and rounded half up; uint8 passes through."""
    if x.dtype == np.uint8:
        return x
    t = np.clip(x, 0.0, 1.0)
    t *= np.float32(255)
    t += np.float32(0.5)
    return t.astype(np.uint8)


def _same_dtype(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    return to_uint8(out) if like.dtype == np.uint8 else out


# ---------------------------------------------------------------------------------------- blur


# Cost model (ms, one 512x512x3 float32 pass with cv2 4.x, single thread), used only to pick the
# fastest path: a direct 2-D filter costs ~0.03 per non-zero tap (OpenCV skips zero taps) but
# OpenCV switches to a DFT (~12, flat) from 130 taps of kernel area; each separable term with n
# taps costs ~0.4 + 0.1 n, plus ~0.5 to add it to the others.
_DFT_AREA, _DFT_COST, _TAP_COST = 130, 12.0, 0.03
_TRIM_MASS = 1e-6  # outer rings holding at most this share of |kernel| mass are cut


def _zap(a: np.ndarray, rel: float) -> np.ndarray:
    """Zero entries below ``rel * max|a|``: float32 denormals make OpenCV filters ~5x slower."""
    a = a.copy()
    a[np.abs(a) < rel * np.abs(a).max()] = 0
    return a


def _trim(kernel: np.ndarray) -> np.ndarray:
    """Crop outer rings that hold < 1e-6 of the kernel's absolute mass, keeping centre and sum.

    The change to any output pixel of a [0, 1] image is below 2e-6 (0.0005 of an 8-bit level).
    """
    k = _zap(kernel.astype(np.float64), 1e-9)
    r = k.shape[0] // 2
    a = np.abs(k)
    total = a.sum()
    # mass inside the centred square of half-width e, for e = 0..r
    inside = np.array([a[r - e : r + e + 1, r - e : r + e + 1].sum() for e in range(r + 1)])
    e = int(np.argmax(total - inside <= _TRIM_MASS * total))
    k = k[r - e : r + e + 1, r - e : r + e + 1]
    want, kept = float(kernel.sum()), float(k.sum())
    return k * (want / kept) if kept != 0 and want != 0 else k


def _separable_terms(kernel: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Rank-r split of a (trimmed) kernel into (column, row) pairs, when that is faster and exact.

    The truncation bound (sum of dropped ``s_i |u_i|_1 |v_i|_1``, an upper bound on the change
    of any output pixel of a [0, 1] image) is held below 1e-6, far below one 8-bit level.
    """
    n = kernel.shape[0]
    if n < 5:
        return None
    u, s, vt = np.linalg.svd(kernel.astype(np.float64))
    mass = s * np.abs(u).sum(0) * np.abs(vt).sum(1)
    tail = np.concatenate([np.cumsum(mass[::-1])[::-1], [0.0]])
    rank = int(np.argmax(tail < 1e-6))
    nnz = np.count_nonzero(kernel)
    full_cost = _TAP_COST * nnz if n * n < _DFT_AREA else _DFT_COST
    if rank == 0 or rank * (0.9 + 0.1 * n) - 0.5 >= full_cost:
        return None
    return [
        (
            _zap(u[:, i] * s[i], 1e-9).astype(np.float32).reshape(-1, 1),
            _zap(vt[i], 1e-9).astype(np.float32).reshape(1, -1),
        )
        for i in range(rank)
    ]


def blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate each channel with ``kernel`` (odd square, any float), reflect-101 border.

    The kernel is cropped to the rings that hold all but 1e-6 of its mass (rescaled to the same
    sum) and low-rank kernels run as separable passes, whichever is fastest. The path is a
    deterministic function of the kernel, and all paths agree to ~2e-6 on [0, 1] images.
    """
    check_image(img)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0:
        raise ValueError(f"kernel must be an odd square 2-D array, got shape {kernel.shape}")
    if not np.isfinite(kernel).all() or not np.any(kernel):
        raise ValueError("kernel must be finite and not all zero")
    x = to_float(img)
    k = _trim(kernel)
    terms = _separable_terms(k)
    if terms is None:
        return _same_dtype(cv2.filter2D(x, -1, k.astype(np.float32), borderType=_BORDER), img)
    (col0, row0), rest = terms[0], terms[1:]
    out = cv2.sepFilter2D(x, -1, row0, col0, borderType=_BORDER)
    for col, row in rest:
        out = cv2.add(out, cv2.sepFilter2D(x, -1, row, col, borderType=_BORDER))
    return _same_dtype(out, img)


# -------------------------------------------------------------------------------------- resize


def resize(img: np.ndarray, size: tuple[int, int], interp: str = "bicubic") -> np.ndarray:
    """Resize to exactly ``size = (height, width)`` with a named interpolation.

    ``interp`` is one of :data:`INTERPOLATIONS`. cv2 conventions: pixel centres aligned
    (half-pixel), ``bilinear``/``bicubic`` do not antialias when shrinking, ``area`` does
    (and behaves like nearest/bilinear when enlarging).
    """
    check_image(img)
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ImageTooSmallError(f"resize target must be at least 1x1, got {size}")
    if interp not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {interp!r}; known: {', '.join(INTERPOLATIONS)}")
    if img.shape[:2] == (h, w):
        return img.copy()
    return cv2.resize(img, (w, h), interpolation=INTERPOLATIONS[interp])


def nearest_downsample(img: np.ndarray, factor: int) -> np.ndarray:
    """Keep every ``factor``-th pixel from the top-left (``img[::f, ::f]``), size ceil(H/f).

    This shifts content by ``(f-1)/2`` pixels relative to a centred resize; undo it after
    resizing back with :func:`subpixel_shift` (see :func:`realign_shift`).
    """
    check_image(img)
    f = int(factor)
    if f < 1:
        raise ValueError(f"nearest factor must be >= 1, got {factor}")
    return np.ascontiguousarray(img[::f, ::f])


def realign_shift(factor: int, src_len: int, dst_len: int) -> float:
    """The shift (in ``dst`` pixels) that re-centres a ``[::factor]`` sample resized to ``dst_len``.

    LQ pixel ``i`` sampled HQ pixel ``i*f`` but a half-pixel-centred resize from ``src_len/f`` to
    ``dst_len`` puts it at ``(i*f + (f-1)/2) * dst_len/src_len``: the offset is ``(f-1)/2`` source
    pixels.
    """
    return (factor - 1) / 2 * dst_len / src_len


def subpixel_shift(img: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """``out[y, x] = img[y + dy, x + dx]`` (bilinear, edge pixels repeated); content moves by -d."""
    check_image(img)
    if dy == 0 and dx == 0:
        return img.copy()
    h, w = img.shape[:2]
    m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]], dtype=np.float64)
    return cv2.warpAffine(
        img, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )


# --------------------------------------------------------------------------------------- noise


def noise_field(seed: int, shape: tuple[int, ...], std: float = 1.0) -> np.ndarray:
    """Normal float32 field (mean 0, ``std``) of ``shape``, a pure function of its arguments.

    Box-Muller on float32 uniforms from numpy's SFC64, with OpenCV's vectorised log/sqrt/polar:
    about three times as fast as ``Generator.standard_normal`` and exact in distribution up to
    the float32 resolution (tails beyond 5.77 std, p < 1e-8, are cut).
    """
    n = int(np.prod(shape))
    m = (n + 1) // 2
    u = np.random.Generator(np.random.SFC64(int(seed))).random(2 * m, dtype=np.float32)
    # in place on u's halves: radius = std * sqrt(-2 log(1 - u1)), angle = 360 * u2 degrees
    radius, angle = u[:m].reshape(-1, 1), u[m:].reshape(-1, 1)
    np.subtract(np.float32(1.0), radius, out=radius)  # (0, 1]: log is finite
    cv2.log(radius, radius)
    radius *= np.float32(-2.0 * std * std)
    cv2.sqrt(radius, radius)
    angle *= np.float32(360.0)
    out = np.empty(2 * m, dtype=np.float32)
    cv2.polarToCart(radius, angle, out[:m].reshape(-1, 1), out[m:].reshape(-1, 1), angleInDegrees=True)
    return out[:n].reshape(shape)


def _add_clip(x: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """``clip(x + noise, 0, 1)``; reuses ``noise``'s memory when shapes match (never ``x``'s)."""
    if noise.shape == x.shape:
        out = np.add(noise, x, out=noise)
    else:
        out = x + noise  # a gray (HxWx1) field broadcast over the channels
    np.clip(out, 0.0, 1.0, out=out)
    return out


def gaussian_noise(
    img: np.ndarray,
    sigma: float,
    *,
    seed: int,
    gray: bool = False,
    cov: list[list[float]] | np.ndarray | None = None,
) -> np.ndarray:
    """Additive Gaussian noise, ``sigma`` on the 0-255 scale, then clipped to the valid range.

    ``gray``: one field shared by the three channels. ``cov`` (3x3, 0-255 scale squared): channel-
    correlated noise with that covariance (``sigma`` is then only informative); a covariance that
    is not positive semi-definite is projected to the nearest one (negative eigenvalues -> 0).
    """
    check_image(img)
    if sigma < 0:
        raise ValueError(f"noise sigma must be >= 0, got {sigma}")
    x = to_float(img)
    h, w = x.shape[:2]
    if cov is not None:
        c = np.asarray(cov, dtype=np.float64)
        if c.shape != (3, 3):
            raise ValueError(f"cov must be 3x3, got {c.shape}")
        vals, vecs = np.linalg.eigh((c + c.T) / 2)
        factor = (vecs * np.sqrt(np.clip(vals, 0, None))) / 255.0  # cov = factor @ factor.T
        z = noise_field(seed, (h * w, 3))
        noise = (z @ factor.T.astype(np.float32)).reshape(h, w, 3)
    else:
        noise = noise_field(seed, (h, w, 1 if gray else 3), sigma / 255.0)
    return _same_dtype(_add_clip(x, noise), img)


def poisson_noise(
    img: np.ndarray, scale: float, *, seed: int, gray: bool = False, levels: int = 256
) -> np.ndarray:
    """Signal-dependent (shot) noise, Real-ESRGAN style: ``scale * (Poisson(levels*I)/levels - I)``.

    Simplification: the Poisson draw is replaced by its variance-matched Gaussian,
    ``sqrt(I/levels) * z``, with ``z`` from ``seed``. That keeps one noise realisation per seed
    whatever the image (an exact Poisson sampler consumes randomness image-dependently) and
    differs from exact Poisson only in the skew of the darkest levels. ``levels`` is fixed
    (Real-ESRGAN derives it from the image's number of distinct values, usually 256).
    ``gray``: the noise is computed on the BT.601 luma and added to all channels.
    """
    check_image(img)
    if scale < 0 or levels < 1:
        raise ValueError(f"poisson scale must be >= 0 and levels >= 1, got {scale}, {levels}")
    x = to_float(img)
    h, w = x.shape[:2]
    base = (x @ _GRAY_WEIGHTS)[:, :, None] if gray else x
    noise = noise_field(seed, (h, w, 1 if gray else 3), scale / np.sqrt(levels))
    std = np.maximum(base, np.float32(0.0))
    np.sqrt(std, out=std)
    noise *= std
    return _same_dtype(_add_clip(x, noise), img)


# ---------------------------------------------------------------------------------------- JPEG


# Chroma subsampling of a JPEG (luma sampling factors H x V; chroma is 1 x 1). Names follow the
# J:a:b convention; "4:1:1" is the real 4x1 horizontal subsampling (Pillow's "4:1:1" is 4:2:0).
JPEG_SUBSAMPLING: dict[str, int] = {
    "4:4:4": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
    "4:2:2": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
    "4:2:0": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
    "4:4:0": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_440,
    "4:1:1": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411,
}


def jpeg_encode(
    img: np.ndarray, quality: int, subsampling: str = "4:2:0", progressive: bool = False
) -> bytes:
    """The JPEG file of ``img`` (libjpeg-turbo through OpenCV: standard tables scaled by ``quality``,
    islow DCT, no Huffman optimisation; the same bytes as Pillow's encoder for 4:4:4/4:2:2/4:2:0)."""
    check_image(img)
    q = int(quality)
    if not 1 <= q <= 100:
        raise ValueError(f"JPEG quality must be in [1, 100], got {quality}")
    if subsampling not in JPEG_SUBSAMPLING:
        raise ValueError(f"unknown JPEG subsampling {subsampling!r}; known: {', '.join(JPEG_SUBSAMPLING)}")
    flags = [cv2.IMWRITE_JPEG_QUALITY, q, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, JPEG_SUBSAMPLING[subsampling]]
    if progressive:
        flags += [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(to_uint8(img), cv2.COLOR_RGB2BGR), flags)
    if not ok:  # pragma: no cover - OpenCV only fails on impossible inputs
        raise RuntimeError("cv2.imencode failed for JPEG")
    return buf.tobytes()


def decode_rgb(data: bytes) -> np.ndarray:
    """An encoded image (any format OpenCV reads) -> RGB uint8 ``HxWx3``."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:  # pragma: no cover - only for bytes that no encoder of ours wrote
        raise RuntimeError("cv2.imdecode could not read the encoded image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def jpeg(img: np.ndarray, quality: int, subsampling: str = "4:2:0", progressive: bool = False) -> np.ndarray:
    """JPEG encode/decode round trip at ``quality`` (1-100), chroma ``subsampling`` (a key of
    :data:`JPEG_SUBSAMPLING`), baseline or ``progressive``; same dtype out. Progressive coding
    changes the file, not the pixels (the same quantised coefficients, coded in several scans)."""
    out = decode_rgb(jpeg_encode(img, quality, subsampling, progressive))
    return out if img.dtype == np.uint8 else to_float(out)


# ---------------------------------------------------------------------------------------- colour


def color(
    img: np.ndarray,
    gain: tuple[float, float, float] = (1.0, 1.0, 1.0),
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0),
    saturation: float = 1.0,
    contrast: float = 1.0,
) -> np.ndarray:
    """A colour cast or fading: ``saturation`` (1 = unchanged, 0 = grey, around the pixel's luma),
    then ``contrast`` (around mid-grey 0.5), then a per-channel ``gain`` and ``offset`` (offset on
    the [0, 1] scale: 8/255 is 8 grey levels). Fading is contrast < 1 with a warm offset; a cast is
    a gain or offset that differs between channels. Clipped to [0, 1] (film and prints saturate)."""
    check_image(img)
    x = to_float(img).copy()
    if saturation != 1.0:
        luma = (x @ _GRAY_WEIGHTS)[:, :, None]
        x = luma + np.float32(saturation) * (x - luma)
    if contrast != 1.0:
        x = np.float32(0.5) + np.float32(contrast) * (x - np.float32(0.5))
    x = x * np.asarray(gain, np.float32) + np.asarray(offset, np.float32)
    return _same_dtype(np.clip(x, 0.0, 1.0).astype(np.float32), img)


def sharpen(img: np.ndarray, amount: float, sigma: float) -> np.ndarray:
    """Unsharp masking, the in-camera / resampler sharpening that leaves halos at edges:
    ``x + amount * (x - gaussian(x, sigma))``, clipped to [0, 1]."""
    check_image(img)
    if sigma <= 0:
        raise ValueError(f"sharpen sigma must be > 0, got {sigma}")
    x = to_float(img)
    soft = cv2.GaussianBlur(x, (0, 0), sigmaX=float(sigma), borderType=_BORDER)
    out = x + np.float32(amount) * (x - soft)
    return _same_dtype(np.clip(out, 0.0, 1.0).astype(np.float32), img)
