"""Steps of the classical ops (the Real-ESRGAN and BSRGAN pipelines): blur, resize, nearest_down,
Gaussian and Poisson noise, JPEG, colour and sharpening.

Their pixel work is in :mod:`redegkit.degrade.ops` (kernels in :mod:`redegkit.degrade.kernels`) and
their draws in :mod:`redegkit.degrade.sampling.classic`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .. import params as P
from ..kernels import MAX_KERNEL_SIZE
from .values import (
    InterpChoice,
    IntRange,
    JpegSubsamplingChoice,
    Prob,
    Range,
    _bounds,
    _Step,
)


class BlurSpec(_Step):
    op: Literal["blur"]
    kernel: P.KernelName = "iso"
    size: IntRange = Field((7, 21), description="Kernel size; odd values in [lo, hi].")
    sigma: Range | None = Field(
        None, description="Width in pixels (aniso: sigma_x, sigma_y drawn independently)."
    )
    variance: Range | None = Field(None, description="Alternative to sigma: draw sigma^2 uniformly (BSRGAN).")
    angle: Range = Field(((-180.0, 180.0),), description="Rotation, degrees (aniso kernels).")
    beta: Range = Field(((1.0, 1.0),), description="Shape of generalized / plateau kernels.")
    cutoff: Range | None = Field(None, description="sinc cut-off, fraction of pi in (0, 1].")
    offset: float = Field(0.0, description="Kernel centre shift, pixels (iso/aniso).")

    @model_validator(mode="after")
    def _check(self) -> BlurSpec:
        lo, hi = self.size
        if lo < 1 or hi > MAX_KERNEL_SIZE or not any(s % 2 for s in range(lo, hi + 1)):
            raise ValueError(f"size [{lo}, {hi}] must contain an odd value in [1, {MAX_KERNEL_SIZE}]")
        if self.kernel == "sinc":
            if self.cutoff is None:
                raise ValueError("a sinc kernel needs 'cutoff' (fraction of pi)")
            _bounds("cutoff", self.cutoff, 1e-6, 1.0)
        else:
            if (self.sigma is None) == (self.variance is None):
                raise ValueError(f"a {self.kernel} kernel needs exactly one of 'sigma' or 'variance'")
            width = self.sigma if self.sigma is not None else self.variance
            assert width is not None  # one of the two is set (checked just above)
            _bounds("sigma" if self.sigma is not None else "variance", width, 0.0)
            _bounds("beta", self.beta, 1e-3)
        return self


class ResizeSpec(_Step):
    op: Literal["resize"]
    ref: P.RefName = Field(
        "current", description="'current' image, pipeline 'input', or final 'output' size."
    )
    factor: Range = Field(((1.0, 1.0),), description="Multiplies the reference size.")
    divide: Range = Field(((1.0, 1.0),), description="Divides the reference size (drawn independently).")
    interp: InterpChoice = Field((("bicubic", 1.0),), description="Interpolation(s) to draw from.")
    realign: bool = Field(False, description="Undo the sampling offset of an earlier nearest_down.")
    quirk: bool = Field(
        False, description="Runs bilinear when the preset sets interp_quirk (ReDegNet reference)."
    )

    @model_validator(mode="after")
    def _check(self) -> ResizeSpec:
        _bounds("factor", self.factor, 1e-3, 64.0)
        _bounds("divide", self.divide, 1e-3, 64.0)
        if min(lo for lo, _ in self.factor) <= 0 or min(lo for lo, _ in self.divide) <= 0:
            raise ValueError("factor and divide must be > 0")
        return self


class NearestDownSpec(_Step):
    op: Literal["nearest_down"]
    factor: int | list[int] = Field(2, description="Integer factor, or a list to draw from.")

    @model_validator(mode="after")
    def _check(self) -> NearestDownSpec:
        fs = self.factor if isinstance(self.factor, list) else [self.factor]
        if not fs or any(f < 1 for f in fs):
            raise ValueError(f"nearest_down factor(s) must be integers >= 1, got {self.factor!r}")
        return self


class GaussianNoiseSpec(_Step):
    op: Literal["gaussian_noise"]
    sigma: Range = Field(description="Standard deviation on the 0-255 scale.")
    gray_p: Prob = Field(0.0, description="Probability of one field shared by all channels.")
    correlated: bool = Field(False, description="Random channel covariance sigma^2 |U^T D U| (BSRGAN).")

    @model_validator(mode="after")
    def _check(self) -> GaussianNoiseSpec:
        _bounds("sigma", self.sigma, 0.0, 255.0)
        return self


class PoissonNoiseSpec(_Step):
    op: Literal["poisson_noise"]
    scale: Range = Field(description="Multiplies the shot noise (Real-ESRGAN's poisson_scale).")
    gray_p: Prob = 0.0

    @model_validator(mode="after")
    def _check(self) -> PoissonNoiseSpec:
        _bounds("scale", self.scale, 0.0, 100.0)
        return self


class JpegSpec(_Step):
    op: Literal["jpeg"]
    quality: IntRange = Field(description="JPEG quality, inclusive range in [1, 100].")
    subsampling: JpegSubsamplingChoice = Field(
        (("4:2:0", 1.0),), description="Chroma subsampling(s) to draw from: 4:4:4 4:2:2 4:2:0 4:4:0 4:1:1."
    )
    progressive_p: Prob = Field(0.0, description="Probability of progressive coding (same pixels).")

    @model_validator(mode="after")
    def _check(self) -> JpegSpec:
        if self.quality[0] < 1 or self.quality[1] > 100:
            raise ValueError(f"quality {list(self.quality)} must lie in [1, 100]")
        return self


class ColorSpec(_Step):
    op: Literal["color"]
    gain: Range = Field(
        ((1.0, 1.0),), description="Gain of every channel (drawn per channel unless gain_r/g/b)."
    )
    gain_r: Range | None = Field(None, description="Red gain (overrides gain for red).")
    gain_g: Range | None = None
    gain_b: Range | None = None
    offset_r: Range = Field(((0.0, 0.0),), description="Red offset, grey levels on the 0-255 scale.")
    offset_g: Range = ((0.0, 0.0),)
    offset_b: Range = ((0.0, 0.0),)
    saturation: Range = Field(((1.0, 1.0),), description="1 = unchanged, 0 = grey.")
    contrast: Range = Field(((1.0, 1.0),), description="Around mid-grey; below 1 fades.")

    @model_validator(mode="after")
    def _check(self) -> ColorSpec:
        for name in ("gain", "gain_r", "gain_g", "gain_b", "saturation", "contrast"):
            r = getattr(self, name)
            if r is not None:
                _bounds(name, r, 0.0, 8.0)
        for name in ("offset_r", "offset_g", "offset_b"):
            _bounds(name, getattr(self, name), -255.0, 255.0)
        return self


class SharpenSpec(_Step):
    op: Literal["sharpen"]
    amount: Range = Field(description="Unsharp-mask strength (0.5-2 is typical of camera sharpening).")
    sigma: Range = Field(((1.0, 1.0),), description="Gaussian radius of the mask, pixels.")

    @model_validator(mode="after")
    def _check(self) -> SharpenSpec:
        _bounds("amount", self.amount, 0.0, 20.0)
        _bounds("sigma", self.sigma, 1e-3, 20.0)
        return self
