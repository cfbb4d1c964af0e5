"""Steps of the tone and colour ops: quantize, dither, halftone, chroma (subsampling), channel_shift
(chromatic aberration) and tone (curves and levels).

Their pixel work is in :mod:`redegkit.degrade.tone`, their draws in :mod:`redegkit.degrade.sampling.tone`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from .values import (
    Choice,
    ChromaModeChoice,
    IntRange,
    MatrixChoice,
    Prob,
    Range,
    _bounds,
    _int_bounds,
    _names,
    _one,
    _Step,
    _uniform,
)


class QuantizeSpec(_Step):
    op: Literal["quantize"]
    mode: Annotated[Choice, _names("quantize mode", ("bits", "levels", "palette"))] = _one("levels")
    bits: IntRange = Field((4, 6), description="mode bits: bits kept per channel, in [1, 8].")
    levels: IntRange = Field((8, 32), description="mode levels: values per channel, in [2, 256].")
    colors: IntRange = Field((16, 128), description="mode palette: palette size, in [2, 256].")
    method: Annotated[Choice, _names("palette method", ("median_cut", "max_coverage", "octree"))] = _one(
        "median_cut"
    )

    @model_validator(mode="after")
    def _check(self) -> QuantizeSpec:
        _int_bounds("bits", self.bits, 1, 8)
        _int_bounds("levels", self.levels, 2, 256)
        _int_bounds("colors", self.colors, 2, 256)
        return self


class DitherSpec(_Step):
    op: Literal["dither"]
    method: Annotated[Choice, _names("dither method", ("bayer", "floyd_steinberg"))] = _uniform(
        "bayer", "floyd_steinberg"
    )
    levels: IntRange = Field((2, 8), description="Values per channel, in [2, 256].")
    size: int | list[int] = Field([4, 8], description="Bayer matrix size(s) to draw from: 2, 4, 8, 16.")
    gray_p: Prob = Field(0.0, description="Probability of dithering the luma only (grey out).")

    @model_validator(mode="after")
    def _check(self) -> DitherSpec:
        _int_bounds("levels", self.levels, 2, 256)
        sizes = self.size if isinstance(self.size, list) else [self.size]
        if not sizes or any(n not in (2, 4, 8, 16) for n in sizes):
            raise ValueError(f"Bayer size(s) must be 2, 4, 8 or 16, got {self.size!r}")
        return self


class HalftoneSpec(_Step):
    op: Literal["halftone"]
    mode: Annotated[Choice, _names("halftone mode", ("mono", "cmyk"))] = _uniform("mono", "cmyk")
    cell: Range = Field(((3.0, 6.0),), description="Screen period in pixels, >= 1.5.")
    angle: Range = Field(((0.0, 90.0),), description="Screen angle, degrees.")
    softness: Range = Field(((0.3, 0.8),), description="Dot edge width, pixels (0: binary).")

    @model_validator(mode="after")
    def _check(self) -> HalftoneSpec:
        _bounds("cell", self.cell, 1.5, 64.0)
        _bounds("softness", self.softness, 0.0, 4.0)
        return self


class ChromaSpec(_Step):
    op: Literal["chroma"]
    mode: ChromaModeChoice = Field(_one("4:2:0"), description="J:a:b subsampling(s) to draw from.")
    matrix: MatrixChoice = _uniform("bt601", "bt709")
    down: Annotated[Choice, _names("chroma downsampling", ("box", "nearest"))] = _one("box")
    up: Annotated[Choice, _names("chroma upsampling", ("nearest", "bilinear", "bicubic"))] = _one("bilinear")


class ChannelShiftSpec(_Step):
    op: Literal["channel_shift"]
    shift: Range = Field(((0.0, 1.5),), description="Red displacement, pixels; blue moves the other way.")
    angle: Range = Field(((0.0, 360.0),), description="Direction of the red displacement, degrees.")
    blue: Range = Field(((0.5, 1.0),), description="Blue displacement as a share of red's.")
    scale: Range = Field(((1.0, 1.0),), description="Red magnification (blue gets 1/scale): lateral CA.")

    @model_validator(mode="after")
    def _check(self) -> ChannelShiftSpec:
        _bounds("shift", self.shift, 0.0, 32.0)
        _bounds("blue", self.blue, 0.0, 4.0)
        _bounds("scale", self.scale, 0.9, 1.1)
        return self


class ToneSpec(_Step):
    op: Literal["tone"]
    gamma: Range = Field(((1.0, 1.0),), description="x ** gamma; > 1 darkens mid-tones.")
    contrast: Range = Field(((1.0, 1.0),), description="About mid-grey.")
    brightness: Range = Field(((0.0, 0.0),), description="Added, on the [0, 1] scale.")
    black: Range = Field(((0.0, 0.0),), description="Output black level, [0, 0.5].")
    white: Range = Field(((1.0, 1.0),), description="Output white level, [0.5, 1].")

    @model_validator(mode="after")
    def _check(self) -> ToneSpec:
        _bounds("gamma", self.gamma, 0.1, 10.0)
        _bounds("contrast", self.contrast, 0.0, 8.0)
        _bounds("brightness", self.brightness, -1.0, 1.0)
        _bounds("black", self.black, 0.0, 0.5)
        _bounds("white", self.white, 0.5, 1.0)
        return self
