"""Samplers of the classical ops: blur, resize, nearest_down, Gaussian and Poisson noise, JPEG,
colour and sharpening (their steps are in :mod:`redegkit.degrade.spec.classic`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...rng import child_seed
from .. import codecs
from .. import params as P
from ..spec.classic import (
    BlurSpec,
    ColorSpec,
    GaussianNoiseSpec,
    JpegSpec,
    NearestDownSpec,
    PoissonNoiseSpec,
    ResizeSpec,
    SharpenSpec,
)
from .draws import _as_spec, _chance, _name, _pick_name, draw


def sample_blur(rng: np.random.Generator, spec: BlurSpec | dict) -> P.BlurParams:
    """Kernel type as given; odd size, widths (or variances), angle, beta or cutoff drawn."""
    s = _as_spec(BlurSpec, spec)
    lo, hi = s.size
    sizes = [n for n in range(lo, hi + 1) if n % 2]
    size = sizes[int(rng.integers(len(sizes)))]
    kw: dict[str, Any] = {"kernel": s.kernel, "size": size}
    if s.cutoff is not None and s.kernel == "sinc":  # (the spec requires cutoff for sinc)
        kw["cutoff"] = draw(rng, s.cutoff)
        return P.BlurParams(**kw)
    sigma, variance = s.sigma, s.variance

    def width() -> float:
        if sigma is not None:
            return draw(rng, sigma)
        assert variance is not None  # the spec requires one of the two
        return math.sqrt(draw(rng, variance))

    sx = width()
    aniso = s.kernel.endswith("aniso")
    kw.update(sigma_x=sx, sigma_y=width() if aniso else sx, offset=s.offset)
    if aniso:
        kw["angle"] = draw(rng, s.angle)
    if s.kernel.startswith(("generalized", "plateau")):
        kw["beta"] = draw(rng, s.beta)
    return P.BlurParams(**kw)


def sample_resize(
    rng: np.random.Generator, spec: ResizeSpec | dict, interp_quirk: bool = False
) -> P.ResizeParams:
    """Factor = factor / divide (each drawn); interpolation drawn (bilinear if the quirk applies)."""
    s = _as_spec(ResizeSpec, spec)
    factor = draw(rng, s.factor) / draw(rng, s.divide)
    interp = _pick_name(rng, s.interp)
    forced = interp_quirk and s.quirk
    return P.ResizeParams(
        ref=s.ref,
        factor=factor,
        interp="bilinear" if forced else interp,
        realign=s.realign,
        quirk=forced,
    )


def sample_nearest_down(rng: np.random.Generator, spec: NearestDownSpec | dict) -> P.NearestDownParams:
    """One integer factor from the list."""
    s = _as_spec(NearestDownSpec, spec)
    fs = s.factor if isinstance(s.factor, list) else [s.factor]
    return P.NearestDownParams(factor=fs[int(rng.integers(len(fs)))])


def sample_gaussian_noise(rng: np.random.Generator, spec: GaussianNoiseSpec | dict) -> P.GaussianNoiseParams:
    """Sigma, gray-or-colour (or a random channel covariance), and the noise seed."""
    s = _as_spec(GaussianNoiseSpec, spec)
    sigma = draw(rng, s.sigma)
    cov = None
    gray = False
    if s.correlated:
        # sigma^2 * |U^T D U| with a random orthonormal U and D = diag of 3 uniforms (BSRGAN's mixed noise)
        d = np.diag(rng.random(3))
        u, _ = np.linalg.qr(rng.random((3, 3)))
        cov = (sigma**2 * np.abs(u.T @ d @ u)).tolist()
    else:
        gray = bool(s.gray_p > 0 and rng.random() < s.gray_p)
    return P.GaussianNoiseParams(sigma=sigma, gray=gray, cov=cov, seed=child_seed(rng))


def sample_poisson_noise(rng: np.random.Generator, spec: PoissonNoiseSpec | dict) -> P.PoissonNoiseParams:
    """Scale, gray-or-colour, and the noise seed."""
    s = _as_spec(PoissonNoiseSpec, spec)
    scale = draw(rng, s.scale)
    gray = bool(s.gray_p > 0 and rng.random() < s.gray_p)
    return P.PoissonNoiseParams(scale=scale, gray=gray, seed=child_seed(rng))


def sample_jpeg(rng: np.random.Generator, spec: JpegSpec | dict) -> P.JpegParams:
    """An integer quality in the inclusive range, a chroma subsampling, baseline or progressive.
    (A single subsampling and progressive_p = 0 draw nothing, so older presets keep their draws.)"""
    s = _as_spec(JpegSpec, spec)
    lo, hi = s.quality
    quality = int(rng.integers(lo, hi + 1))
    return P.JpegParams(
        quality=quality,
        subsampling=_name(rng, s.subsampling),
        progressive=_chance(rng, s.progressive_p),
        lib=codecs.library_version("jpeg"),
    )


def sample_color(rng: np.random.Generator, spec: ColorSpec | dict) -> P.ColorParams:
    """Per-channel gains (gain_r/g/b when given, else gain drawn per channel), offsets (grey levels
    -> [0, 1] scale), saturation and contrast."""
    s = _as_spec(ColorSpec, spec)
    gains = tuple(draw(rng, getattr(s, f"gain_{c}") or s.gain) for c in "rgb")
    offsets = tuple(draw(rng, getattr(s, f"offset_{c}")) / 255.0 for c in "rgb")
    return P.ColorParams(
        gain=gains, offset=offsets, saturation=draw(rng, s.saturation), contrast=draw(rng, s.contrast)
    )


def sample_sharpen(rng: np.random.Generator, spec: SharpenSpec | dict) -> P.SharpenParams:
    s = _as_spec(SharpenSpec, spec)
    return P.SharpenParams(amount=draw(rng, s.amount), sigma=draw(rng, s.sigma))
