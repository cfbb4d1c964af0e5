"""Samplers of the tone and colour ops: quantize, dither, halftone, chroma, channel_shift and tone
(their steps are in :mod:`redegkit.degrade.spec.tone`).
"""

from __future__ import annotations

import numpy as np

from .. import params as P
from ..spec.tone import ChannelShiftSpec, ChromaSpec, DitherSpec, HalftoneSpec, QuantizeSpec, ToneSpec
from .draws import _as_spec, _chance, _int, _name, _polar, draw


def sample_quantize(rng: np.random.Generator, spec: QuantizeSpec | dict) -> P.QuantizeParams:
    """A mode, then only the number that mode uses (the others keep their no-op defaults)."""
    s = _as_spec(QuantizeSpec, spec)
    mode = _name(rng, s.mode)
    if mode == "bits":
        return P.QuantizeParams(mode=mode, bits=_int(rng, s.bits))
    if mode == "levels":
        return P.QuantizeParams(mode=mode, levels=_int(rng, s.levels))
    return P.QuantizeParams(mode=mode, colors=_int(rng, s.colors), method=_name(rng, s.method))


def sample_dither(rng: np.random.Generator, spec: DitherSpec | dict) -> P.DitherParams:
    s = _as_spec(DitherSpec, spec)
    method = _name(rng, s.method)
    sizes = s.size if isinstance(s.size, list) else [s.size]
    size = sizes[0] if len(sizes) == 1 or method != "bayer" else sizes[int(rng.integers(len(sizes)))]
    return P.DitherParams(method=method, levels=_int(rng, s.levels), size=size, gray=_chance(rng, s.gray_p))


def sample_halftone(rng: np.random.Generator, spec: HalftoneSpec | dict) -> P.HalftoneParams:
    s = _as_spec(HalftoneSpec, spec)
    return P.HalftoneParams(
        mode=_name(rng, s.mode),
        cell=draw(rng, s.cell),
        angle=draw(rng, s.angle),
        softness=draw(rng, s.softness),
    )


def sample_chroma(rng: np.random.Generator, spec: ChromaSpec | dict) -> P.ChromaParams:
    s = _as_spec(ChromaSpec, spec)
    return P.ChromaParams(
        mode=_name(rng, s.mode), matrix=_name(rng, s.matrix), down=_name(rng, s.down), up=_name(rng, s.up)
    )


def sample_channel_shift(rng: np.random.Generator, spec: ChannelShiftSpec | dict) -> P.ChannelShiftParams:
    """Red moves by (length, angle), blue the opposite way by a share of it; red magnified by
    ``scale``, blue by its inverse."""
    s = _as_spec(ChannelShiftSpec, spec)
    dy, dx = _polar(draw(rng, s.shift), draw(rng, s.angle))
    b = draw(rng, s.blue)
    scale = draw(rng, s.scale)
    return P.ChannelShiftParams(
        shift_r=(dy, dx), shift_b=(-b * dy, -b * dx), scale_r=scale, scale_b=1.0 / scale
    )


def sample_tone(rng: np.random.Generator, spec: ToneSpec | dict) -> P.ToneParams:
    s = _as_spec(ToneSpec, spec)
    return P.ToneParams(
        gamma=draw(rng, s.gamma),
        contrast=draw(rng, s.contrast),
        brightness=draw(rng, s.brightness),
        black=draw(rng, s.black),
        white=draw(rng, s.white),
    )
