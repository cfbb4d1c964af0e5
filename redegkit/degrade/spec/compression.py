"""Steps of the compression ops besides JPEG: the still-image codecs WebP, AVIF and JPEG 2000, and
video (a short clip through h264, hevc, vp9, av1, mpeg2 or mpeg4).

Their pixel work is in :mod:`redegkit.degrade.codecs` and :mod:`redegkit.degrade.video`, their draws in
:mod:`redegkit.degrade.sampling.compression`.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, model_validator

from .. import params as P
from .values import Choice, IntRange, Prob, Range, _bounds, _int_bounds, _names, _one, _Step, _uniform


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
