"""Steps of the geometry and signal artefacts (pixelate, interlace, ghosting, motion_blur,
speckle_noise, salt_pepper) and of the camera ISP round trip (camera_isp).

Their pixel work is in :mod:`redegkit.degrade.artefacts` and :mod:`redegkit.degrade.isp`, their draws
in :mod:`redegkit.degrade.sampling.artefacts`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ..kernels import MAX_KERNEL_SIZE
from .values import Choice, IntRange, Prob, Range, _bounds, _int_bounds, _names, _Step, _uniform


class PixelateSpec(_Step):
    op: Literal["pixelate"]
    block: IntRange = Field(description="Tile size in pixels, inclusive range in [1, 64].")

    @model_validator(mode="after")
    def _check(self) -> PixelateSpec:
        _int_bounds("block", self.block, 1, 64)
        return self


class InterlaceSpec(_Step):
    op: Literal["interlace"]
    mode: Annotated[Choice, _names("interlace mode", ("weave", "drop", "blend"))] = _uniform(
        "weave", "drop", "blend"
    )
    field: Annotated[Choice, _names("field", ("top", "bottom"))] = _uniform("top", "bottom")
    motion: Range = Field(((0.5, 3.0),), description="Motion between the fields, pixels.")
    angle: Range = Field(((0.0, 360.0),), description="Direction of that motion, degrees.")
    fill: Annotated[Choice, _names("field fill", ("duplicate", "linear"))] = _uniform("duplicate", "linear")

    @model_validator(mode="after")
    def _check(self) -> InterlaceSpec:
        _bounds("motion", self.motion, 0.0, 64.0)
        return self


class GhostingSpec(_Step):
    op: Literal["ghosting"]
    offset: Range = Field(((2.0, 12.0),), description="Distance of the first echo, pixels.")
    angle: Range = Field(((0.0, 0.0),), description="Its direction, degrees (0: to the right, as on TV).")
    amount: Range = Field(((0.1, 0.4),), description="Weight of the first echo, in [0, 1).")
    echoes: IntRange = Field((1, 2), description="Number of echoes, in [1, 8].")

    @model_validator(mode="after")
    def _check(self) -> GhostingSpec:
        _bounds("offset", self.offset, 0.0, 256.0)
        _bounds("amount", self.amount, 0.0, 0.99)
        _int_bounds("echoes", self.echoes, 1, 8)
        return self


class MotionBlurSpec(_Step):
    op: Literal["motion_blur"]
    length: Range = Field(description=f"Blur length in pixels, in [0, {MAX_KERNEL_SIZE - 3}].")
    angle: Range = Field(((0.0, 180.0),), description="Direction, degrees (0: horizontal).")

    @model_validator(mode="after")
    def _check(self) -> MotionBlurSpec:
        _bounds("length", self.length, 0.0, float(MAX_KERNEL_SIZE - 3))
        return self


class SpeckleNoiseSpec(_Step):
    op: Literal["speckle_noise"]
    sigma: Range = Field(description="Relative standard deviation, in [0, 1].")
    gray_p: Prob = Field(0.0, description="Probability of one field shared by all channels.")

    @model_validator(mode="after")
    def _check(self) -> SpeckleNoiseSpec:
        _bounds("sigma", self.sigma, 0.0, 1.0)
        return self


class SaltPepperSpec(_Step):
    op: Literal["salt_pepper"]
    amount: Range = Field(description="Share of corrupted pixels, in [0, 1].")
    salt: Range = Field(((0.5, 0.5),), description="Share of them that are white.")
    per_channel_p: Prob = Field(0.0, description="Probability of corrupting single channel samples.")

    @model_validator(mode="after")
    def _check(self) -> SaltPepperSpec:
        _bounds("amount", self.amount, 0.0, 1.0)
        _bounds("salt", self.salt, 0.0, 1.0)
        return self


class CameraIspSpec(_Step):
    op: Literal["camera_isp"]
    ccm_strength: Range = Field(
        ((0.05, 0.4),), description="Off-diagonal magnitude of the camera -> sRGB matrix (0: identity)."
    )
    r_gain: Range = Field(((1.9, 2.4),), description="Red white-balance gain (Brooks et al.).")
    b_gain: Range = Field(((1.5, 1.9),), description="Blue white-balance gain.")
    rgb_gain: Range = Field(((1.1, 1.5),), description="Exposure gain (the raw is darker by 1/gain).")
    shot: Range = Field(
        ((1e-4, 1.2e-2),), description="Shot-noise variance per unit signal, drawn log-uniformly."
    )
    read: Range | None = Field(
        None,
        description="Read-noise variance, log-uniform; unset: from shot by Brooks et al.'s fit "
        "log(read) = 2.18 log(shot) + 1.2 + N(0, 0.26).",
    )
    bits: IntRange = Field((10, 14), description="Raw bit depth, in [8, 16].")
    pattern: Annotated[Choice, _names("Bayer pattern", ("RGGB", "BGGR", "GRBG", "GBRG"))] = _uniform(
        "RGGB", "BGGR", "GRBG", "GBRG"
    )
    demosaic: Annotated[Choice, _names("demosaic", ("bilinear", "edge_aware"))] = _uniform(
        "bilinear", "edge_aware"
    )
    tone_curve: bool = Field(True, description="Invert and re-apply a smoothstep tone curve.")
    wb_error: Range = Field(((1.0, 1.0),), description="Red and blue gain errors when processing back.")

    @model_validator(mode="after")
    def _check(self) -> CameraIspSpec:
        _bounds("ccm_strength", self.ccm_strength, 0.0, 1.0)
        for name in ("r_gain", "b_gain", "rgb_gain", "wb_error"):
            _bounds(name, getattr(self, name), 0.1, 10.0)
        _bounds("shot", self.shot, 1e-8, 1.0)
        if self.read is not None:
            _bounds("read", self.read, 1e-12, 1.0)
        _int_bounds("bits", self.bits, 8, 16)
        return self
