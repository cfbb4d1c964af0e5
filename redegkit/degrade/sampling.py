"""Sampling: turn a :class:`~redegkit.degrade.spec.Preset` into op params with a numpy Generator.

``sample_<op>(rng, spec) -> params`` draws one op's numbers from its spec's ranges (noise ops
draw a seed for their noise field); :func:`sample_ops` resolves the combinators (probabilities,
choices, shuffled orders) into the flat list of ops that run. The generator is the only source
of randomness, so the same seed gives the same params.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar, get_args

import numpy as np
from pydantic import BaseModel

from ..rng import child_seed
from . import params as P
from .spec import (
    BlurSpec,
    ColorSpec,
    GaussianNoiseSpec,
    JpegSpec,
    NearestDownSpec,
    OneOfSpec,
    PoissonNoiseSpec,
    Preset,
    ResizeSpec,
    SequenceSpec,
    SharpenSpec,
    ShuffleSpec,
)

SpecT = TypeVar("SpecT", bound=BaseModel)


def draw(rng: np.random.Generator, r: tuple[tuple[float, float], ...]) -> float:
    """Sample a parsed :data:`Range`: pick a sub-range uniformly, then uniform inside it."""
    lo, hi = r[0] if len(r) == 1 else r[int(rng.integers(len(r)))]
    return lo if lo == hi else float(rng.uniform(lo, hi))


def pick(rng: np.random.Generator, weights: list[float] | tuple[float, ...]) -> int:
    """Index drawn with probability proportional to ``weights`` (one uniform draw)."""
    if len(weights) == 1:
        return 0
    u = rng.random() * sum(weights)
    acc = 0.0
    for i, w in enumerate(weights):
        acc += w
        if u < acc:
            return i
    return len(weights) - 1  # u == total after rounding


def _pick_name(rng: np.random.Generator, choice: tuple[tuple[str, float], ...]) -> str:
    return choice[pick(rng, [w for _, w in choice])][0]


def _as_spec(cls: type[SpecT], spec: SpecT | dict[str, Any]) -> SpecT:
    """Accept a spec model or its dict form (``{"sigma": [1, 5], ...}``; ``op`` may be left out)."""
    if isinstance(spec, cls):
        return spec
    if not isinstance(spec, dict):
        raise TypeError(f"expected a {cls.__name__} or a dict, got {type(spec).__name__}")
    op = get_args(cls.model_fields["op"].annotation)[0]  # the Literal's one value
    return cls.model_validate({"op": op, **spec})


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
    """An integer quality in the inclusive range."""
    s = _as_spec(JpegSpec, spec)
    lo, hi = s.quality
    return P.JpegParams(quality=int(rng.integers(lo, hi + 1)))


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


_SAMPLERS: dict[type, Callable[[np.random.Generator, Any], P.OpParamsBase]] = {
    BlurSpec: sample_blur,
    NearestDownSpec: sample_nearest_down,
    GaussianNoiseSpec: sample_gaussian_noise,
    PoissonNoiseSpec: sample_poisson_noise,
    JpegSpec: sample_jpeg,
    ColorSpec: sample_color,
    SharpenSpec: sample_sharpen,
}

Unit = list[Any]  # a run of op params that a shuffle moves as one item


def _sample_units(step: Any, rng: np.random.Generator, preset: Preset, label: str | None) -> list[Unit]:
    if step.p < 1.0 and rng.random() >= step.p:
        return []
    label = step.label or label
    if isinstance(step, SequenceSpec):
        units = [u for s in step.steps for u in _sample_units(s, rng, preset, label)]
        return units if step.spread else [[op for u in units for op in u]]
    if isinstance(step, OneOfSpec):
        i = pick(rng, step.weights or [1.0] * len(step.choices))
        return _sample_units(step.choices[i], rng, preset, label)
    if isinstance(step, ShuffleSpec):
        return [_shuffle(step, rng, preset, label)]
    op: P.OpParamsBase
    if isinstance(step, ResizeSpec):
        op = sample_resize(rng, step, preset.interp_quirk)
    else:
        op = _SAMPLERS[type(step)](rng, step)
    op.label = label
    return [[op]]


def _shuffle(step: ShuffleSpec, rng: np.random.Generator, preset: Preset, label: str | None) -> Unit:
    tagged = [(i, u) for i, s in enumerate(step.steps) for u in _sample_units(s, rng, preset, label)]
    order = [tagged[j] for j in rng.permutation(len(tagged))]
    for group in step.keep_order:
        slots = [k for k, (i, _) in enumerate(order) if i in group]
        members = sorted((order[k] for k in slots), key=lambda t: group.index(t[0]))  # stable within a step
        for k, m in zip(slots, members, strict=True):
            order[k] = m
    return [op for _, u in order for op in u]


def sample_ops(preset: Preset, rng: np.random.Generator) -> list[Any]:
    """Resolve every probability, choice and order of ``preset``: the flat list of op params."""
    units = [u for s in preset.steps for u in _sample_units(s, rng, preset, None)]
    return [op for u in units for op in u]
