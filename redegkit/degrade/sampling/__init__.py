"""Sampling: turn a :class:`~redegkit.degrade.spec.Preset` into op params with a numpy Generator.

``sample_<op>(rng, spec) -> params`` draws one op's numbers from its spec's ranges (noise ops
draw a seed for their noise field); :func:`sample_ops` resolves the combinators (probabilities,
choices, shuffled orders) into the flat list of ops that run. The generator is the only source
of randomness, so the same seed gives the same params.

This package resolves the combinators; the ``sample_<op>`` functions live in one module per op
family, beside the family's steps in :mod:`redegkit.degrade.spec`: :mod:`.classic`,
:mod:`.compression`, :mod:`.tone` and :mod:`.artefacts`, built from the draws in :mod:`.draws`.
Every ``sample_<op>`` is importable from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import params as P
from ..spec import (
    AvifSpec,
    BlurSpec,
    CameraIspSpec,
    ChannelShiftSpec,
    ChromaSpec,
    ColorSpec,
    DitherSpec,
    GaussianNoiseSpec,
    GhostingSpec,
    HalftoneSpec,
    InterlaceSpec,
    Jpeg2000Spec,
    JpegSpec,
    MotionBlurSpec,
    NearestDownSpec,
    OneOfSpec,
    PixelateSpec,
    PoissonNoiseSpec,
    Preset,
    QuantizeSpec,
    ResizeSpec,
    SaltPepperSpec,
    SequenceSpec,
    SharpenSpec,
    ShuffleSpec,
    SpeckleNoiseSpec,
    ToneSpec,
    VideoSpec,
    WebpSpec,
)
from .artefacts import (
    sample_camera_isp,
    sample_ghosting,
    sample_interlace,
    sample_motion_blur,
    sample_pixelate,
    sample_salt_pepper,
    sample_speckle_noise,
)
from .classic import (
    sample_blur,
    sample_color,
    sample_gaussian_noise,
    sample_jpeg,
    sample_nearest_down,
    sample_poisson_noise,
    sample_resize,
    sample_sharpen,
)
from .compression import sample_avif, sample_jpeg2000, sample_video, sample_webp
from .draws import draw, pick
from .tone import (
    sample_channel_shift,
    sample_chroma,
    sample_dither,
    sample_halftone,
    sample_quantize,
    sample_tone,
)

_SAMPLERS: dict[type, Callable[[np.random.Generator, Any], P.OpParamsBase]] = {
    BlurSpec: sample_blur,
    NearestDownSpec: sample_nearest_down,
    GaussianNoiseSpec: sample_gaussian_noise,
    PoissonNoiseSpec: sample_poisson_noise,
    JpegSpec: sample_jpeg,
    ColorSpec: sample_color,
    SharpenSpec: sample_sharpen,
    WebpSpec: sample_webp,
    AvifSpec: sample_avif,
    Jpeg2000Spec: sample_jpeg2000,
    VideoSpec: sample_video,
    QuantizeSpec: sample_quantize,
    DitherSpec: sample_dither,
    HalftoneSpec: sample_halftone,
    ChromaSpec: sample_chroma,
    ChannelShiftSpec: sample_channel_shift,
    ToneSpec: sample_tone,
    PixelateSpec: sample_pixelate,
    InterlaceSpec: sample_interlace,
    GhostingSpec: sample_ghosting,
    MotionBlurSpec: sample_motion_blur,
    SpeckleNoiseSpec: sample_speckle_noise,
    SaltPepperSpec: sample_salt_pepper,
    CameraIspSpec: sample_camera_isp,
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


__all__ = [
    "Unit",
    "draw",
    "pick",
    "sample_avif",
    "sample_blur",
    "sample_camera_isp",
    "sample_channel_shift",
    "sample_chroma",
    "sample_color",
    "sample_dither",
    "sample_gaussian_noise",
    "sample_ghosting",
    "sample_halftone",
    "sample_interlace",
    "sample_jpeg",
    "sample_jpeg2000",
    "sample_motion_blur",
    "sample_nearest_down",
    "sample_ops",
    "sample_pixelate",
    "sample_poisson_noise",
    "sample_quantize",
    "sample_resize",
    "sample_salt_pepper",
    "sample_sharpen",
    "sample_speckle_noise",
    "sample_tone",
    "sample_video",
    "sample_webp",
]
