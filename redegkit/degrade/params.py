"""Sampled op parameters (plain data) and how to apply them.

One ``*Params`` model per op: every number that the op needs, noise seeds included, so that
``apply_op(img, params)`` is deterministic and replayable from JSON. The preset language is in
:mod:`redegkit.degrade.spec`, sampling in :mod:`redegkit.degrade.sampling`; the pixel work in
:mod:`redegkit.degrade.ops` and the op family modules beside it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from ..config import StrictModel
from . import artefacts, codecs, isp, ops, tone, video
from .kernels import KERNEL_TYPES, MAX_KERNEL_SIZE, make_kernel

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


JpegSubsampling = Literal["4:4:4", "4:2:2", "4:2:0", "4:4:0", "4:1:1"]
ChromaMode = Literal["4:4:4", "4:4:0", "4:2:2", "4:2:0", "4:1:1", "4:1:0"]
Matrix = Literal["bt601", "bt709", "bt2020"]
Shift = tuple[float, float]
VideoCodecName = Literal["h264", "hevc", "vp9", "av1", "mpeg2", "mpeg4"]
SpeedPreset = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
]
_LIB = Field("", description="Codec libraries and versions that the op ran on (a record, not an input).")


class JpegParams(OpParamsBase):
    op: Literal["jpeg"] = "jpeg"
    quality: int = Field(ge=1, le=100)
    subsampling: JpegSubsampling = Field("4:2:0", description="Chroma subsampling (J:a:b).")
    progressive: bool = Field(False, description="Progressive scans (changes the file, not the pixels).")
    lib: str = _LIB


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


# ------------------------------------------------------------------------------- compression


class WebpParams(OpParamsBase):
    op: Literal["webp"] = "webp"
    quality: int = Field(ge=0, le=100)
    method: int = Field(4, ge=0, le=6, description="Encoder effort: 0 fast - 6 slowest.")
    lib: str = _LIB


class AvifParams(OpParamsBase):
    op: Literal["avif"] = "avif"
    quality: int = Field(ge=0, le=100)
    speed: int = Field(6, ge=0, le=10, description="Encoder speed: 0 slowest - 10 fastest.")
    subsampling: Literal["4:4:4", "4:2:2", "4:2:0"] = "4:2:0"
    lib: str = _LIB


class Jpeg2000Params(OpParamsBase):
    op: Literal["jpeg2000"] = "jpeg2000"
    ratio: float = Field(ge=1, description="Compression ratio (raw size / file size).")
    levels: int = Field(5, ge=1, le=8, description="Wavelet decomposition levels (fewer on small images).")
    lib: str = _LIB


class VideoParams(OpParamsBase):
    op: Literal["video"] = "video"
    codec: VideoCodecName
    quality: float | None = Field(
        None, description="crf (h264/hevc 0-51, vp9/av1 0-63) or fixed quantiser (mpeg2/mpeg4 1-31)."
    )
    bpp: float | None = Field(None, gt=0, description="Bit rate instead, in bits per pixel per frame.")
    preset: SpeedPreset | None = Field(
        None, description="x264/x265 speed preset (vp9: mapped to cpu-used); none for mpeg2/mpeg4."
    )
    pix_fmt: Literal["yuv420p", "yuv422p"] = "yuv420p"
    matrix: Literal["bt601", "bt709"] = "bt709"
    shifts: list[Shift] = Field(
        default_factory=lambda: [(0.0, 0.0)],
        description="(dy, dx) content shift of each frame of the clip; the middle one is the image.",
    )
    chroma_delay: int = Field(0, ge=0, description="Frames by which chroma lags luma.")
    lib: str = _LIB

    @model_validator(mode="after")
    def _check(self) -> VideoParams:
        c = video.CODECS[self.codec]
        if (self.quality is None) == (self.bpp is None):
            raise ValueError("video: give exactly one of quality or bpp")
        lo = 0 if c.quality == "crf" else 1
        if self.quality is not None and not lo <= self.quality <= c.quality_max:
            raise ValueError(f"video: {self.codec} {c.quality} must be in [{lo}, {c.quality_max}]")
        if self.quality is not None and self.codec not in ("h264", "hevc") and self.quality % 1:
            raise ValueError(f"video: {self.codec} {c.quality} must be a whole number, got {self.quality}")
        if self.pix_fmt not in c.pix_fmts:
            raise ValueError(f"video: {self.codec} takes {', '.join(c.pix_fmts)}, not {self.pix_fmt}")
        n = len(self.shifts)
        if n % 2 == 0 or n > video.MAX_FRAMES or tuple(self.shifts[n // 2]) != (0.0, 0.0):
            raise ValueError(
                f"video: shifts must list 1 to {video.MAX_FRAMES} frames, odd, (0, 0) in the middle"
            )
        return self


# ---------------------------------------------------------------------------- tone and colour


class QuantizeParams(OpParamsBase):
    op: Literal["quantize"] = "quantize"
    mode: Literal["bits", "levels", "palette"]
    bits: int = Field(8, ge=1, le=8, description="mode bits: bits kept per channel (posterise).")
    levels: int = Field(256, ge=2, le=256, description="mode levels: evenly spaced values per channel.")
    colors: int = Field(256, ge=2, le=256, description="mode palette: adaptive palette size.")
    method: Literal["median_cut", "max_coverage", "octree"] = "median_cut"


class DitherParams(OpParamsBase):
    op: Literal["dither"] = "dither"
    method: Literal["bayer", "floyd_steinberg"]
    levels: int = Field(ge=2, le=256, description="Values per channel after dithering.")
    size: int = Field(4, description="Bayer matrix size (2, 4, 8 or 16).")
    gray: bool = Field(False, description="Dither the luma, grey out.")

    @model_validator(mode="after")
    def _check(self) -> DitherParams:
        if self.size not in (2, 4, 8, 16):
            raise ValueError(f"dither: Bayer size must be 2, 4, 8 or 16, got {self.size}")
        return self


class HalftoneParams(OpParamsBase):
    op: Literal["halftone"] = "halftone"
    mode: Literal["mono", "cmyk"]
    cell: float = Field(ge=1.5, le=64, description="Screen period, pixels.")
    angle: float = Field(0.0, description="Screen angle, degrees (cmyk: base of 15/75/0/45).")
    softness: float = Field(0.5, ge=0, le=4, description="Dot edge width, pixels.")


class ChromaParams(OpParamsBase):
    op: Literal["chroma"] = "chroma"
    mode: ChromaMode
    matrix: Matrix = "bt601"
    down: Literal["box", "nearest"] = "box"
    up: Literal["nearest", "bilinear", "bicubic"] = "bilinear"


class ChannelShiftParams(OpParamsBase):
    op: Literal["channel_shift"] = "channel_shift"
    shift_r: Shift = Field((0.0, 0.0), description="(dy, dx) of the red plane, pixels.")
    shift_b: Shift = Field((0.0, 0.0), description="(dy, dx) of the blue plane, pixels.")
    scale_r: float = Field(1.0, gt=0, description="Magnification of the red plane about the centre.")
    scale_b: float = Field(1.0, gt=0)


class ToneParams(OpParamsBase):
    op: Literal["tone"] = "tone"
    gamma: float = Field(1.0, gt=0)
    contrast: float = Field(1.0, ge=0)
    brightness: float = Field(0.0, ge=-1, le=1)
    black: float = Field(0.0, ge=0, le=1, description="Output level of black.")
    white: float = Field(1.0, ge=0, le=1, description="Output level of white.")


# ------------------------------------------------------------------------- geometry and signal


class PixelateParams(OpParamsBase):
    op: Literal["pixelate"] = "pixelate"
    block: int = Field(ge=1, le=64)


class InterlaceParams(OpParamsBase):
    op: Literal["interlace"] = "interlace"
    mode: Literal["weave", "drop", "blend"]
    field: Literal["top", "bottom"] = "top"
    motion: Shift = Field((0.0, 0.0), description="(dy, dx) motion between the two fields, pixels.")
    fill: Literal["duplicate", "linear"] = "linear"


class GhostingParams(OpParamsBase):
    op: Literal["ghosting"] = "ghosting"
    offset: Shift = Field(description="(dy, dx) of the first echo, pixels.")
    amount: float = Field(ge=0, lt=1, description="Weight of the first echo (the k-th: amount**k).")
    echoes: int = Field(1, ge=1, le=8)


class MotionBlurParams(OpParamsBase):
    op: Literal["motion_blur"] = "motion_blur"
    length: float = Field(ge=0, le=MAX_KERNEL_SIZE - 3, description="Pixels.")
    angle: float = Field(0.0, description="Degrees, 0 horizontal.")


class SpeckleNoiseParams(OpParamsBase):
    op: Literal["speckle_noise"] = "speckle_noise"
    sigma: float = Field(ge=0, description="Relative standard deviation (x + x * sigma * z).")
    gray: bool = False
    seed: int = Field(ge=0)
    rng: Literal["sfc64-boxmuller-f32"] = Field(ops.NOISE_BITGEN, description="How the field is drawn.")


class SaltPepperParams(OpParamsBase):
    op: Literal["salt_pepper"] = "salt_pepper"
    amount: float = Field(ge=0, le=1, description="Share of corrupted pixels (samples if per_channel).")
    salt: float = Field(0.5, ge=0, le=1, description="Share of the corrupted ones that are white.")
    per_channel: bool = False
    seed: int = Field(ge=0)
    rng: Literal["sfc64-uniform-f32"] = Field("sfc64-uniform-f32", description="How the field is drawn.")


class CameraIspParams(OpParamsBase):
    op: Literal["camera_isp"] = "camera_isp"
    ccm: list[list[float]] = Field(description="3x3 camera RGB -> linear sRGB, rows summing to 1.")
    r_gain: float = Field(gt=0, description="White-balance gain of red.")
    b_gain: float = Field(gt=0, description="White-balance gain of blue.")
    rgb_gain: float = Field(gt=0, description="Exposure (digital) gain.")
    pattern: Literal["RGGB", "BGGR", "GRBG", "GBRG"] = "RGGB"
    shot: float = Field(ge=0, description="Shot-noise variance per unit of raw signal.")
    read: float = Field(ge=0, description="Read-noise variance (raw scale [0, 1]).")
    bits: int = Field(12, ge=8, le=16, description="Raw bit depth.")
    demosaic: Literal["bilinear", "edge_aware"] = "bilinear"
    tone_curve: bool = True
    wb_error: tuple[float, float] = Field((1.0, 1.0), description="Red and blue gain errors when processing.")
    seed: int = Field(ge=0)
    rng: Literal["sfc64-boxmuller-f32"] = Field(ops.NOISE_BITGEN, description="How the field is drawn.")

    @model_validator(mode="after")
    def _check(self) -> CameraIspParams:
        m = np.asarray(self.ccm, dtype=np.float64)
        if m.shape != (3, 3) or not np.isfinite(m).all() or abs(np.linalg.det(m)) < 1e-6:
            raise ValueError("camera_isp: ccm must be an invertible 3x3 matrix")
        return self


OpParams = Annotated[
    BlurParams
    | ResizeParams
    | NearestDownParams
    | GaussianNoiseParams
    | PoissonNoiseParams
    | JpegParams
    | ColorParams
    | SharpenParams
    | WebpParams
    | AvifParams
    | Jpeg2000Params
    | VideoParams
    | QuantizeParams
    | DitherParams
    | HalftoneParams
    | ChromaParams
    | ChannelShiftParams
    | ToneParams
    | PixelateParams
    | InterlaceParams
    | GhostingParams
    | MotionBlurParams
    | SpeckleNoiseParams
    | SaltPepperParams
    | CameraIspParams,
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
    return ops.jpeg(x, p.quality, p.subsampling, p.progressive)


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


def _apply_video(x: np.ndarray, p: VideoParams) -> np.ndarray:
    return video.video(
        x,
        p.codec,
        quality=p.quality,
        bpp=p.bpp,
        preset=p.preset,
        pix_fmt=p.pix_fmt,
        matrix=p.matrix,
        shifts=[(float(dy), float(dx)) for dy, dx in p.shifts],
        chroma_delay=p.chroma_delay,
    )


def _apply_quantize(x: np.ndarray, p: QuantizeParams) -> np.ndarray:
    return tone.quantize(x, p.mode, bits=p.bits, levels=p.levels, colors=p.colors, method=p.method)


def _apply_isp(x: np.ndarray, p: CameraIspParams) -> np.ndarray:
    return isp.camera_isp(
        x,
        ccm=p.ccm,
        r_gain=p.r_gain,
        b_gain=p.b_gain,
        rgb_gain=p.rgb_gain,
        pattern=p.pattern,
        shot=p.shot,
        read=p.read,
        bits=p.bits,
        seed=p.seed,
        demosaic_method=p.demosaic,
        tone_curve=p.tone_curve,
        wb_error=p.wb_error,
    )


_APPLY: dict[type, Callable[[np.ndarray, Any], np.ndarray]] = {
    BlurParams: apply_blur,
    GaussianNoiseParams: apply_gaussian_noise,
    PoissonNoiseParams: apply_poisson_noise,
    JpegParams: apply_jpeg,
    ColorParams: apply_color,
    SharpenParams: apply_sharpen,
    WebpParams: lambda x, p: codecs.webp(x, p.quality, p.method),
    AvifParams: lambda x, p: codecs.avif(x, p.quality, p.speed, p.subsampling),
    Jpeg2000Params: lambda x, p: codecs.jpeg2000(x, p.ratio, p.levels),
    VideoParams: _apply_video,
    QuantizeParams: _apply_quantize,
    DitherParams: lambda x, p: tone.dither(x, p.method, p.levels, size=p.size, gray=p.gray),
    HalftoneParams: lambda x, p: tone.halftone(x, p.mode, p.cell, p.angle, p.softness),
    ChromaParams: lambda x, p: tone.chroma(x, p.mode, p.matrix, p.down, p.up),
    ChannelShiftParams: lambda x, p: tone.channel_shift(x, p.shift_r, p.shift_b, p.scale_r, p.scale_b),
    ToneParams: lambda x, p: tone.tone(x, p.gamma, p.contrast, p.brightness, p.black, p.white),
    PixelateParams: lambda x, p: artefacts.pixelate(x, p.block),
    InterlaceParams: lambda x, p: artefacts.interlace(x, p.mode, p.field, p.motion, p.fill),
    GhostingParams: lambda x, p: artefacts.ghosting(x, p.offset, p.amount, p.echoes),
    MotionBlurParams: lambda x, p: artefacts.motion_blur(x, p.length, p.angle),
    SpeckleNoiseParams: lambda x, p: artefacts.speckle_noise(x, p.sigma, seed=p.seed, gray=p.gray),
    SaltPepperParams: lambda x, p: artefacts.salt_pepper(
        x, p.amount, seed=p.seed, salt=p.salt, per_channel=p.per_channel
    ),
    CameraIspParams: _apply_isp,
}
