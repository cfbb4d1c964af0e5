"""Sampled op parameters (plain data) and how to apply them.

One ``*Params`` model per op: every number that the op needs, noise seeds included, so that
``apply_op(img, params)`` is deterministic and replayable from JSON. Sampling lives in
:mod:`redegkit.degrade.spec`; the pixel work in :mod:`redegkit.degrade.ops`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from ..config import StrictModel
from . import ops
from .kernels import KERNEL_TYPES, make_kernel

InterpName = Literal["nearest", "bilinear", "bicubic", "area", "lanczos"]
KernelName = Literal[KERNEL_TYPES]  # type: ignore[valid-type]
RefName = Literal["current", "input", "output"]


class OpParamsBase(StrictModel):
    """What every op's params share: the label of the preset step that produced the op."""

    label: str | None = Field(None, description="Label of the preset step that produced this op.")


class BlurParams(OpParamsBase):
    op: Literal["blur"] = "blur"
    kernel: KernelName
    size: int = Field(description="Odd kernel size (pixels).")
    sigma_x: float = 0.0
    sigma_y: float = 0.0
    angle: float = Field(0.0, description="Rotation in degrees (anisotropic kernels).")
    beta: float = 1.0
    cutoff: float = Field(1.0, description="sinc cut-off as a fraction of pi.")
    offset: float = Field(0.0, description="Kernel centre shift in pixels (both axes).")

    def kernel_array(self) -> np.ndarray:
        return make_kernel(
            self.kernel,
            self.size,
            self.sigma_x,
            self.sigma_y,
            self.angle,
            self.beta,
            self.cutoff,
            self.offset,
        )


class ResizeParams(OpParamsBase):
    op: Literal["resize"] = "resize"
    ref: RefName = Field(
        description="Size the factor applies to: current image, pipeline input, or final output."
    )
    factor: float = Field(gt=0, description="Target = floor(ref size * factor) per axis.")
    interp: InterpName
    realign: bool = Field(False, description="Undo the offset of an earlier nearest_down.")
    quirk: bool = Field(False, description="interp was forced to bilinear (ReDegNet reference quirk).")


class NearestDownParams(OpParamsBase):
    op: Literal["nearest_down"] = "nearest_down"
    factor: int = Field(ge=1)


class GaussianNoiseParams(OpParamsBase):
    op: Literal["gaussian_noise"] = "gaussian_noise"
    sigma: float = Field(ge=0, description="Standard deviation on the 0-255 scale.")
    gray: bool = False
    cov: list[list[float]] | None = Field(
        None, description="3x3 channel covariance (0-255 scale), if correlated."
    )
    seed: int = Field(ge=0)
    rng: Literal["sfc64-boxmuller-f32"] = Field(
        ops.NOISE_BITGEN, description="How the field is drawn from seed."
    )


class PoissonNoiseParams(OpParamsBase):
    op: Literal["poisson_noise"] = "poisson_noise"
    scale: float = Field(ge=0)
    gray: bool = False
    levels: int = 256
    seed: int = Field(ge=0)
    rng: Literal["sfc64-boxmuller-f32"] = Field(
        ops.NOISE_BITGEN, description="How the field is drawn from seed."
    )


class JpegParams(OpParamsBase):
    op: Literal["jpeg"] = "jpeg"
    quality: int = Field(ge=1, le=100)


class ColorParams(OpParamsBase):
    op: Literal["color"] = "color"
    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    offset: tuple[float, float, float] = Field(
        (0.0, 0.0, 0.0), description="Per channel, on the [0, 1] scale."
    )
    saturation: float = Field(1.0, ge=0)
    contrast: float = Field(1.0, ge=0)


class SharpenParams(OpParamsBase):
    op: Literal["sharpen"] = "sharpen"
    amount: float = Field(ge=0, description="Unsharp-mask strength (0: none).")
    sigma: float = Field(gt=0, description="Gaussian radius of the mask, pixels.")


OpParams = Annotated[
    BlurParams
    | ResizeParams
    | NearestDownParams
    | GaussianNoiseParams
    | PoissonNoiseParams
    | JpegParams
    | ColorParams
    | SharpenParams,
    Field(discriminator="op"),
]


@dataclass
class ApplyContext:
    """Sizes a pipeline needs besides the current image: its input and its final output size.

    ``pending`` carries ``(offset, src_h, src_w)`` from a ``nearest_down`` to the next
    ``resize`` with ``realign``.
    """

    input_hw: tuple[int, int]
    output_hw: tuple[int, int]
    pending: tuple[float, int, int] | None = None


def resize_target(ref_hw: tuple[int, int], factor: float) -> tuple[int, int]:
    # +1e-6: 0.25 * 512 must give 128, not 127.99999 -> 127
    return tuple(max(1, math.floor(s * factor + 1e-6)) for s in ref_hw)  # type: ignore[return-value]


def apply_blur(x: np.ndarray, p: BlurParams) -> np.ndarray:
    return ops.blur(x, p.kernel_array())


def apply_resize(x: np.ndarray, p: ResizeParams, ctx: ApplyContext | None = None) -> np.ndarray:
    if p.ref == "current":
        ref = x.shape[:2]
    elif ctx is None:
        raise ValueError(f"resize with ref={p.ref!r} needs an ApplyContext (input/output sizes)")
    else:
        ref = ctx.input_hw if p.ref == "input" else ctx.output_hw
    th, tw = resize_target(ref, p.factor)
    out = ops.resize(x, (th, tw), p.interp)
    if p.realign and ctx is not None and ctx.pending is not None:
        off, sh, sw = ctx.pending
        ctx.pending = None
        out = ops.subpixel_shift(out, off * th / sh, off * tw / sw)
    return out


def apply_nearest_down(x: np.ndarray, p: NearestDownParams, ctx: ApplyContext | None = None) -> np.ndarray:
    if ctx is not None:
        ctx.pending = ((p.factor - 1) / 2, x.shape[0], x.shape[1])
    return ops.nearest_downsample(x, p.factor)


def apply_gaussian_noise(x: np.ndarray, p: GaussianNoiseParams) -> np.ndarray:
    return ops.gaussian_noise(x, p.sigma, seed=p.seed, gray=p.gray, cov=p.cov)


def apply_poisson_noise(x: np.ndarray, p: PoissonNoiseParams) -> np.ndarray:
    return ops.poisson_noise(x, p.scale, seed=p.seed, gray=p.gray, levels=p.levels)


def apply_jpeg(x: np.ndarray, p: JpegParams) -> np.ndarray:
    return ops.jpeg(x, p.quality)


def apply_color(x: np.ndarray, p: ColorParams) -> np.ndarray:
    return ops.color(x, p.gain, p.offset, p.saturation, p.contrast)


def apply_sharpen(x: np.ndarray, p: SharpenParams) -> np.ndarray:
    return ops.sharpen(x, p.amount, p.sigma)


def apply_op(x: np.ndarray, p: OpParamsBase, ctx: ApplyContext | None = None) -> np.ndarray:
    """Apply one sampled op to an RGB uint8/float32 image (same dtype out)."""
    if isinstance(p, ResizeParams):
        return apply_resize(x, p, ctx)
    if isinstance(p, NearestDownParams):
        return apply_nearest_down(x, p, ctx)
    fn = _APPLY.get(type(p))
    if fn is None:
        raise TypeError(f"not an op params object: {type(p).__name__}")
    return fn(x, p)


_APPLY: dict[type, Callable[[np.ndarray, Any], np.ndarray]] = {
    BlurParams: apply_blur,
    GaussianNoiseParams: apply_gaussian_noise,
    PoissonNoiseParams: apply_poisson_noise,
    JpegParams: apply_jpeg,
    ColorParams: apply_color,
    SharpenParams: apply_sharpen,
}
