"""Blur kernels: Gaussian family (isotropic, anisotropic, generalized, plateau) and sinc.

Every kernel is a float32 ``(size, size)`` array with an odd ``size``, normalised to sum 1.
Angles are in degrees, widths (sigma) in pixels. The formulas follow the Real-ESRGAN
paper's definitions (Wang et al., ICCVW 2021), written from the maths:

* Gaussian family: with the rotated quadratic form ``q = (x'/sx)^2 + (y'/sy)^2``,
  ``gaussian = exp(-q/2)``, ``generalized = exp(-q**beta / 2)``, ``plateau = 1 / (1 + q**beta)``.
* sinc (ideal circular low-pass, gives ringing): ``k(r) = wc * J1(wc r) / (2 pi r)`` with cut-off
  ``wc = cutoff * pi`` (``cutoff`` in (0, 1], 1 = Nyquist) and ``k(0) = wc^2 / (4 pi)``.

``offset`` moves the kernel centre by a sub-pixel amount (both axes). With ``cv2.filter2D``
(correlation) a kernel centred at ``+offset`` makes output pixel ``i`` average around input pixel
``i + offset``; BSRGAN uses this before a nearest ``[0::sf]`` sample to hit block centres.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

MAX_KERNEL_SIZE = 63
_MIN_SIGMA = 1e-4  # a zero width is a delta kernel; keep the quadratic form finite


def _check_size(size: int) -> int:
    if int(size) != size or size < 1 or size % 2 == 0 or size > MAX_KERNEL_SIZE:
        raise ValueError(f"kernel size must be an odd integer in [1, {MAX_KERNEL_SIZE}], got {size!r}")
    return int(size)


@lru_cache(maxsize=128)
def _grid(size: int, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates relative to the (shifted) kernel centre, float64, read-only."""
    r = size // 2
    ax = np.arange(-r, r + 1, dtype=np.float64) - offset
    yy, xx = np.meshgrid(ax, ax, indexing="ij")
    yy.setflags(write=False)
    xx.setflags(write=False)
    return xx, yy


def _normalise(k: np.ndarray) -> np.ndarray:
    s = k.sum()
    if not np.isfinite(s) or s <= 0:
        raise ValueError("kernel has no positive mass (check its parameters)")
    return (k / s).astype(np.float32)


def _quadratic(size: int, sigma_x: float, sigma_y: float, angle: float, offset: float) -> np.ndarray:
    xx, yy = _grid(size, float(offset))
    t = math.radians(angle)
    c, s = math.cos(t), math.sin(t)
    xr = c * xx + s * yy
    yr = -s * xx + c * yy
    sx, sy = max(float(sigma_x), _MIN_SIGMA), max(float(sigma_y), _MIN_SIGMA)
    return (xr / sx) ** 2 + (yr / sy) ** 2


def gaussian_kernel(
    size: int, sigma_x: float, sigma_y: float | None = None, angle: float = 0.0, offset: float = 0.0
) -> np.ndarray:
    """Anisotropic (rotated) Gaussian; isotropic when ``sigma_y`` is None or equal to ``sigma_x``."""
    size = _check_size(size)
    q = _quadratic(size, sigma_x, sigma_x if sigma_y is None else sigma_y, angle, offset)
    return _normalise(np.exp(-0.5 * q))


def isotropic_gaussian_kernel(size: int, sigma: float, offset: float = 0.0) -> np.ndarray:
    return gaussian_kernel(size, sigma, sigma, 0.0, offset)


def anisotropic_gaussian_kernel(size: int, sigma_x: float, sigma_y: float, angle: float) -> np.ndarray:
    return gaussian_kernel(size, sigma_x, sigma_y, angle)


def generalized_gaussian_kernel(
    size: int, sigma_x: float, sigma_y: float, angle: float, beta: float
) -> np.ndarray:
    """``exp(-q**beta / 2)``: beta < 1 has heavier tails, beta > 1 a flatter top than a Gaussian."""
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    q = _quadratic(_check_size(size), sigma_x, sigma_y, angle, 0.0)
    return _normalise(np.exp(-0.5 * q**beta))


def plateau_kernel(size: int, sigma_x: float, sigma_y: float, angle: float, beta: float) -> np.ndarray:
    """``1 / (1 + q**beta)``: a flat top with slowly decaying tails."""
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    q = _quadratic(_check_size(size), sigma_x, sigma_y, angle, 0.0)
    return _normalise(1.0 / (1.0 + q**beta))


def bessel_j1(x: np.ndarray) -> np.ndarray:
    """Bessel function of the first kind, order 1, float64 (no SciPy needed).

    Uses ``J1(x) = 1/(2 pi) * integral_0^2pi cos(t - x sin t) dt``; the trapezoid rule on a full
    period of an analytic periodic integrand converges exponentially once the number of nodes
    exceeds ``|x|``, so ``|x| + 64`` nodes are accurate to ~1e-15.
    """
    x = np.asarray(x, dtype=np.float64)
    n = int(np.abs(x).max(initial=0.0)) + 64
    t = np.arange(n, dtype=np.float64) * (2 * math.pi / n)
    return np.cos(t[None, :] - x.reshape(-1, 1) * np.sin(t)[None, :]).mean(axis=1).reshape(x.shape)


def sinc_kernel(size: int, cutoff: float) -> np.ndarray:
    """Circular low-pass ("sinc") kernel with cut-off ``cutoff * pi`` rad/pixel, ``cutoff`` in (0, 1].

    Truncated to ``size``, it has negative lobes: that is what produces ringing/overshoot.
    """
    size = _check_size(size)
    if not 0 < cutoff <= 1:
        raise ValueError(f"sinc cutoff must be in (0, 1] (fraction of pi), got {cutoff}")
    wc = cutoff * math.pi
    xx, yy = _grid(size, 0.0)
    r = np.hypot(xx, yy)
    # J1 only at the distinct radii (a 21x21 kernel has ~66 of them)
    radii, inverse = np.unique(np.round(r, 12), return_inverse=True)
    j1 = bessel_j1(wc * radii)[inverse].reshape(r.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = wc * j1 / (2 * math.pi * r)
    k[r == 0] = wc**2 / (4 * math.pi)
    return _normalise(k)


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """Linear motion blur: a line segment of ``length`` pixels through the centre at ``angle``
    degrees (0: horizontal, 90: vertical, counter-clockwise on screen), drawn anti-aliased (points
    every 1/16 pixel splatted bilinearly) into the smallest odd square that holds it; sum 1.
    ``length`` 0 is the identity (a 1x1 kernel)."""
    if not 0 <= length <= MAX_KERNEL_SIZE - 3:
        raise ValueError(f"motion length must be in [0, {MAX_KERNEL_SIZE - 3}] pixels, got {length}")
    size = int(math.ceil(length)) + 3
    size += 1 - size % 2
    if length == 0:
        return np.ones((1, 1), np.float32)
    r = size // 2
    n = int(math.ceil(length * 16)) + 1
    t = np.linspace(-length / 2, length / 2, n)
    a = math.radians(angle)
    px, py = r + t * math.cos(a), r - t * math.sin(a)  # image rows grow downwards
    x0, y0 = np.floor(px).astype(int), np.floor(py).astype(int)
    fx, fy = px - x0, py - y0
    k = np.zeros((size, size))
    for dy, dx, wgt in (
        (0, 0, (1 - fy) * (1 - fx)),
        (0, 1, (1 - fy) * fx),
        (1, 0, fy * (1 - fx)),
        (1, 1, fy * fx),
    ):
        np.add.at(k, (y0 + dy, x0 + dx), wgt)
    return _normalise(k)


KERNEL_TYPES = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
    "sinc",
)


@lru_cache(maxsize=512)
def make_kernel(
    kernel: str,
    size: int,
    sigma_x: float = 1.0,
    sigma_y: float = 1.0,
    angle: float = 0.0,
    beta: float = 1.0,
    cutoff: float = 1.0,
    offset: float = 0.0,
) -> np.ndarray:
    """Build a kernel by type name (see :data:`KERNEL_TYPES`); read-only, cached.

    The ``*_iso`` types use ``sigma_x`` for both axes and ignore ``angle``; ``sinc`` uses only
    ``cutoff``; ``offset`` applies to the plain Gaussians (``iso``/``aniso``).
    """
    if kernel == "iso":
        k = gaussian_kernel(size, sigma_x, sigma_x, 0.0, offset)
    elif kernel == "aniso":
        k = gaussian_kernel(size, sigma_x, sigma_y, angle, offset)
    elif kernel == "generalized_iso":
        k = generalized_gaussian_kernel(size, sigma_x, sigma_x, 0.0, beta)
    elif kernel == "generalized_aniso":
        k = generalized_gaussian_kernel(size, sigma_x, sigma_y, angle, beta)
    elif kernel == "plateau_iso":
        k = plateau_kernel(size, sigma_x, sigma_x, 0.0, beta)
    elif kernel == "plateau_aniso":
        k = plateau_kernel(size, sigma_x, sigma_y, angle, beta)
    elif kernel == "sinc":
        k = sinc_kernel(size, cutoff)
    else:
        raise ValueError(f"unknown kernel type {kernel!r}; known: {', '.join(KERNEL_TYPES)}")
    k.setflags(write=False)
    return k
