"""The preset language: op steps with ranges and probabilities, and combinators.

A preset is data (a dict, e.g. a recipe's ``[presets.NAME]`` TOML table)::

    description = "mild blur, downscale, JPEG"
    steps = [
      { op = "blur", kernel = "iso", size = [7, 15], sigma = [0.2, 1.5], p = 0.8 },
      { op = "resize", ref = "output", interp = ["bilinear", "bicubic"] },
      { op = "jpeg", quality = [60, 95] },
    ]

Every step has ``op``, an optional ``p`` (probability it runs, default 1) and an optional
``label`` (recorded with the ops it produces). Value fields take a number, a range ``[lo, hi]``
(uniform), or a list of ranges ``[[lo, hi], ...]`` (pick one range uniformly, then uniform in it).
Integer fields (``quality``, ``size``) take an int or an inclusive ``[lo, hi]``; ``size`` and
``frames`` draw odd values only. Choice fields (``interp``, ``codec``, ``subsampling``, ...) take a
name, a list (uniform) or a ``{name = weight}`` table. ``*_p`` fields are probabilities.

Ops: ``blur``, ``resize``, ``nearest_down``, ``gaussian_noise``, ``poisson_noise``, ``jpeg`` (quality,
chroma subsampling, progressive), ``color`` (cast, fading), ``sharpen`` (unsharp mask, halos);
compression ``webp``, ``avif``, ``jpeg2000``, ``video`` (h264/hevc/vp9/av1/mpeg2/mpeg4 through PyAV);
tone and colour ``quantize``, ``dither``, ``halftone``, ``chroma``, ``channel_shift``, ``tone``;
geometry and signal ``pixelate``, ``interlace``, ``ghosting``, ``motion_blur``, ``speckle_noise``,
``salt_pepper``; the camera ``camera_isp``. docs/degradations.md describes each.
Combinators: ``sequence`` (``steps``), ``shuffle`` (``steps`` in random order, ``keep_order``
lists of step indices that keep their relative order), ``one_of`` (``choices`` with optional
``weights``). A ``sequence`` with ``spread = true`` inside a ``shuffle`` contributes its steps as
separate items to the shuffle. Sampling (:mod:`.sampling`) turns a preset into a flat list of op params
(:mod:`redegkit.degrade.params`): only the ops that run, with all their numbers.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from functools import cached_property
from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator, ConfigDict, Field, model_validator

from ..config import StrictModel
from . import params as P
from .kernels import MAX_KERNEL_SIZE
from .ops import INTERPOLATIONS

# ------------------------------------------------------------------------------ value ranges


def _num(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"{what}: expected a finite number, got {v!r}")
    return float(v)


def _parse_range(v: Any) -> tuple[tuple[float, float], ...]:
    """number | [lo, hi] | [[lo, hi], ...] -> ((lo, hi), ...)."""
    if isinstance(v, tuple) and v and all(isinstance(r, tuple) for r in v):
        return v  # already parsed (model copy / re-validation)
    if isinstance(v, list | tuple):
        items = list(v)
        if len(items) == 2 and not any(isinstance(i, list | tuple) for i in items):
            items = [items]
        out = []
        for r in items:
            if not isinstance(r, list | tuple) or len(r) != 2:
                raise ValueError(f"expected a number, [lo, hi] or a list of [lo, hi]; got {v!r}")
            lo, hi = _num(r[0], "range"), _num(r[1], "range")
            if lo > hi:
                raise ValueError(f"range [{lo}, {hi}] has lo > hi")
            out.append((lo, hi))
        if not out:
            raise ValueError("empty range list")
        return tuple(out)
    x = _num(v, "range")
    return ((x, x),)


def _parse_int_range(v: Any) -> tuple[int, int]:
    if isinstance(v, list | tuple) and len(v) == 2:
        lo, hi = v
    else:
        lo = hi = v
    if any(isinstance(i, bool) or not isinstance(i, int) for i in (lo, hi)):
        raise ValueError(f"expected an integer or [lo, hi] of integers, got {v!r}")
    if lo > hi:
        raise ValueError(f"range [{lo}, {hi}] has lo > hi")
    return (lo, hi)


def _choice_pairs(v: Any) -> tuple[tuple[str, float], ...]:
    """name | [names] | {name = weight} -> ((name, weight), ...), weights >= 0 with a positive sum."""
    if isinstance(v, tuple) and all(isinstance(c, tuple) for c in v):
        return v
    if isinstance(v, str):
        pairs = [(v, 1.0)]
    elif isinstance(v, list):
        pairs = [(c, 1.0) for c in v]
    elif isinstance(v, dict):
        pairs = [(c, _num(w, "weight")) for c, w in v.items()]
    else:
        raise ValueError(f"expected a name, a list of names or a {{name = weight}} table, got {v!r}")
    if not pairs or any(w < 0 for _, w in pairs) or sum(w for _, w in pairs) <= 0:
        raise ValueError(f"choice needs at least one name and positive total weight, got {v!r}")
    if any(not isinstance(c, str) for c, _ in pairs):
        raise ValueError(f"choice names must be strings, got {v!r}")
    return tuple(pairs)


def _names(what: str, known: Iterable[str]) -> BeforeValidator:
    """A validator for a choice among ``known`` names (``what`` names them in errors)."""
    allowed = tuple(known)

    def parse(v: Any) -> tuple[tuple[str, float], ...]:
        pairs = _choice_pairs(v)
        for c, _ in pairs:
            if c not in allowed:
                raise ValueError(f"unknown {what} {c!r}; known: {', '.join(allowed)}")
        return pairs

    return BeforeValidator(parse)


Range = Annotated[tuple[tuple[float, float], ...], BeforeValidator(_parse_range)]
IntRange = Annotated[tuple[int, int], BeforeValidator(_parse_int_range)]
Choice = tuple[tuple[str, float], ...]
InterpChoice = Annotated[Choice, _names("interpolation", INTERPOLATIONS)]
Prob = Annotated[float, Field(ge=0.0, le=1.0)]


def _bounds(name: str, r: tuple[tuple[float, float], ...], lo: float, hi: float = math.inf) -> None:
    for a, b in r:
        if a < lo or b > hi:
            raise ValueError(f"{name} range [{a}, {b}] is outside [{lo}, {hi}]")


def _int_bounds(name: str, r: tuple[int, int], lo: int, hi: int) -> None:
    if r[0] < lo or r[1] > hi:
        raise ValueError(f"{name} {list(r)} must lie in [{lo}, {hi}]")


def _one(name: str) -> Choice:
    return ((name, 1.0),)


def _uniform(*names: str) -> Choice:
    return tuple((n, 1.0) for n in names)


JpegSubsamplingChoice = Annotated[Choice, _names("JPEG subsampling", get_args(P.JpegSubsampling))]
ChromaModeChoice = Annotated[Choice, _names("chroma subsampling", get_args(P.ChromaMode))]
MatrixChoice = Annotated[Choice, _names("colour matrix", get_args(P.Matrix))]


# ------------------------------------------------------------------------------- op steps


class _Step(StrictModel):
    p: Prob = Field(1.0, description="Probability that this step runs.")
    label: str | None = Field(None, description="Recorded with the ops this step produces.")


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


# ------------------------------------------------------------------------------ compression


class WebpSpec(_Step):
    op: Literal["webp"]
    quality: IntRange = Field(description="WebP quality, inclusive range in [0, 100].")
    method: IntRange = Field((4, 4), description="Encoder effort 0 (fast) - 6 (slow).")

    @model_validator(mode="after")
    def _check(self) -> WebpSpec:
        _int_bounds("quality", self.quality, 0, 100)
        _int_bounds("method", self.method, 0, 6)
        return self


class AvifSpec(_Step):
    op: Literal["avif"]
    quality: IntRange = Field(description="AVIF quality, inclusive range in [0, 100].")
    speed: IntRange = Field((6, 6), description="Encoder speed 0 (slow) - 10 (fast).")
    subsampling: Annotated[Choice, _names("AVIF subsampling", ("4:4:4", "4:2:2", "4:2:0"))] = _one("4:2:0")

    @model_validator(mode="after")
    def _check(self) -> AvifSpec:
        _int_bounds("quality", self.quality, 0, 100)
        _int_bounds("speed", self.speed, 0, 10)
        return self


class Jpeg2000Spec(_Step):
    op: Literal["jpeg2000"]
    ratio: Range = Field(description="Compression ratio (raw size / file size), >= 1.")
    levels: IntRange = Field((5, 5), description="Wavelet levels in [1, 8].")

    @model_validator(mode="after")
    def _check(self) -> Jpeg2000Spec:
        _bounds("ratio", self.ratio, 1.0, 10000.0)
        _int_bounds("levels", self.levels, 1, 8)
        return self


class VideoSpec(_Step):
    op: Literal["video"]
    codec: Annotated[Choice, _names("video codec", get_args(P.VideoCodecName))]
    rate: Annotated[Choice, _names("rate control", ("quality", "bitrate"))] = Field(
        _one("quality"), description="'quality' (crf / fixed quantiser) or 'bitrate' (bpp)."
    )
    crf: Range = Field(((20.0, 35.0),), description="h264/hevc crf in [0, 51].")
    vp9_crf: Range = Field(((25.0, 50.0),), description="vp9 crf in [0, 63] (rounded).")
    av1_crf: Range = Field(((30.0, 50.0),), description="av1 (SVT-AV1) crf in [0, 63] (rounded).")
    qscale: IntRange = Field((3, 12), description="mpeg2/mpeg4 fixed quantiser in [1, 31].")
    bpp: Range = Field(((0.02, 0.2),), description="Bits per pixel per frame when rate = 'bitrate'.")
    preset: Annotated[Choice, _names("speed preset", get_args(P.SpeedPreset))] = Field(
        _uniform("veryfast", "faster", "fast", "medium"), description="x264/x265 preset (vp9: cpu-used)."
    )
    pix_fmt: Annotated[Choice, _names("pixel format", ("yuv420p", "yuv422p"))] = _one("yuv420p")
    matrix: Annotated[Choice, _names("video matrix", ("bt601", "bt709"))] = _uniform("bt601", "bt709")
    frames: IntRange = Field((5, 5), description="Clip length; odd values in [1, 15] (1: intra only).")
    motion: Range = Field(((0.0, 1.5),), description="Pan speed, pixels per frame (random direction).")
    jitter: Range = Field(((0.0, 0.5),), description="Random shake of each frame, pixels per axis.")
    chroma_delay_p: Prob = Field(0.0, description="Probability that chroma lags luma (tape, some broadcast).")
    chroma_delay: IntRange = Field((1, 1), description="By how many frames, then (capped at frames // 2).")

    @model_validator(mode="after")
    def _check(self) -> VideoSpec:
        _bounds("crf", self.crf, 0.0, 51.0)
        _bounds("vp9_crf", self.vp9_crf, 0.0, 63.0)
        _bounds("av1_crf", self.av1_crf, 0.0, 63.0)
        _int_bounds("qscale", self.qscale, 1, 31)
        _bounds("bpp", self.bpp, 1e-4, 64.0)
        _bounds("motion", self.motion, 0.0, 32.0)
        _bounds("jitter", self.jitter, 0.0, 8.0)
        lo, hi = self.frames
        if lo < 1 or hi > 15 or not any(n % 2 for n in range(lo, hi + 1)):
            raise ValueError(f"frames {list(self.frames)} must contain an odd value in [1, 15]")
        if self.chroma_delay[0] < 0 or self.chroma_delay[1] > 7:
            raise ValueError(f"chroma_delay {list(self.chroma_delay)} must lie in [0, 7]")
        fmts = {n for n, _ in self.pix_fmt}
        for codec, _ in self.codec:
            if not fmts & set(video_codec_pix_fmts(codec)):
                raise ValueError(f"codec {codec} takes none of the pixel formats {sorted(fmts)}")
        return self


def video_codec_pix_fmts(codec: str) -> tuple[str, ...]:
    """The pixel formats ``codec`` takes (mpeg4 and av1: 4:2:0 only)."""
    return ("yuv420p",) if codec in ("mpeg4", "av1") else ("yuv420p", "yuv422p")


# -------------------------------------------------------------------------- tone and colour


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


# ----------------------------------------------------------------------- geometry and signal


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


# ----------------------------------------------------------------------------- combinators


class SequenceSpec(_Step):
    op: Literal["sequence"]
    steps: list[Step]
    spread: bool = Field(False, description="Inside a shuffle, shuffle these steps as separate items.")


class ShuffleSpec(_Step):
    op: Literal["shuffle"]
    steps: list[Step]
    keep_order: list[list[int]] = Field(
        default_factory=list, description="Groups of step indices kept in order."
    )

    @model_validator(mode="after")
    def _check(self) -> ShuffleSpec:
        for g in self.keep_order:
            if len(set(g)) != len(g) or any(not 0 <= i < len(self.steps) for i in g):
                raise ValueError(f"keep_order group {g} must list distinct step indices < {len(self.steps)}")
        return self


class OneOfSpec(_Step):
    op: Literal["one_of"]
    choices: list[Step] = Field(min_length=1)
    weights: list[float] | None = None

    @model_validator(mode="after")
    def _check(self) -> OneOfSpec:
        if self.weights is not None:
            if len(self.weights) != len(self.choices):
                raise ValueError(f"{len(self.weights)} weights for {len(self.choices)} choices")
            if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError(f"weights must be >= 0 with a positive sum, got {self.weights}")
        return self


Step = Annotated[
    BlurSpec
    | ResizeSpec
    | NearestDownSpec
    | GaussianNoiseSpec
    | PoissonNoiseSpec
    | JpegSpec
    | ColorSpec
    | SharpenSpec
    | WebpSpec
    | AvifSpec
    | Jpeg2000Spec
    | VideoSpec
    | QuantizeSpec
    | DitherSpec
    | HalftoneSpec
    | ChromaSpec
    | ChannelShiftSpec
    | ToneSpec
    | PixelateSpec
    | InterlaceSpec
    | GhostingSpec
    | MotionBlurSpec
    | SpeckleNoiseSpec
    | SaltPepperSpec
    | CameraIspSpec
    | SequenceSpec
    | ShuffleSpec
    | OneOfSpec,
    Field(discriminator="op"),
]
for _m in (SequenceSpec, ShuffleSpec, OneOfSpec):
    _m.model_rebuild()

OP_NAMES = (
    "blur",
    "resize",
    "nearest_down",
    "gaussian_noise",
    "poisson_noise",
    "jpeg",
    "color",
    "sharpen",
    "webp",
    "avif",
    "jpeg2000",
    "video",
    "quantize",
    "dither",
    "halftone",
    "chroma",
    "channel_shift",
    "tone",
    "pixelate",
    "interlace",
    "ghosting",
    "motion_blur",
    "speckle_noise",
    "salt_pepper",
    "camera_isp",
)
COMBINATOR_NAMES = ("sequence", "shuffle", "one_of")


class Preset(StrictModel):
    """A named degradation pipeline: a top-level sequence of steps (immutable once built)."""

    model_config = ConfigDict(frozen=True)

    name: str = ""
    description: str = ""
    steps: list[Step]
    interp_quirk: bool = Field(
        False,
        description="Steps marked quirk=true run bilinear whatever interp was drawn "
        "(ReDegNet reference bug).",
    )
    final_interp: P.InterpName = Field(
        "bicubic", description="Used only if the pipeline ends at another size than (H//scale, W//scale)."
    )

    @cached_property
    def sha256(self) -> str:
        """Hash of the canonical JSON: which exact preset produced a record."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()
