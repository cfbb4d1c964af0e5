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
separate items to the shuffle. Sampling (:mod:`redegkit.degrade.sampling`) turns a preset into a flat
list of op params (:mod:`redegkit.degrade.params`): only the ops that run, with all their numbers.

This package defines the combinators, the :data:`Step` union and :class:`Preset`; the value types are
in :mod:`.values` and the op steps in one module per family: :mod:`.classic` (blur, resize, noise,
JPEG, colour, sharpen), :mod:`.compression` (WebP, AVIF, JPEG 2000, video), :mod:`.tone` (tone and
colour) and :mod:`.artefacts` (geometry and signal, camera ISP). Every name is importable from here.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from ...config import StrictModel
from .. import params as P
from .artefacts import (
    CameraIspSpec,
    GhostingSpec,
    InterlaceSpec,
    MotionBlurSpec,
    PixelateSpec,
    SaltPepperSpec,
    SpeckleNoiseSpec,
)
from .classic import (
    BlurSpec,
    ColorSpec,
    GaussianNoiseSpec,
    JpegSpec,
    NearestDownSpec,
    PoissonNoiseSpec,
    ResizeSpec,
    SharpenSpec,
)
from .compression import AvifSpec, Jpeg2000Spec, VideoSpec, WebpSpec, video_codec_pix_fmts
from .tone import ChannelShiftSpec, ChromaSpec, DitherSpec, HalftoneSpec, QuantizeSpec, ToneSpec
from .values import (
    Choice,
    ChromaModeChoice,
    InterpChoice,
    IntRange,
    JpegSubsamplingChoice,
    MatrixChoice,
    Prob,
    Range,
    _Step,
)

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


__all__ = [
    "COMBINATOR_NAMES",
    "OP_NAMES",
    "AvifSpec",
    "BlurSpec",
    "CameraIspSpec",
    "ChannelShiftSpec",
    "Choice",
    "ChromaModeChoice",
    "ChromaSpec",
    "ColorSpec",
    "DitherSpec",
    "GaussianNoiseSpec",
    "GhostingSpec",
    "HalftoneSpec",
    "IntRange",
    "InterlaceSpec",
    "InterpChoice",
    "Jpeg2000Spec",
    "JpegSpec",
    "JpegSubsamplingChoice",
    "MatrixChoice",
    "MotionBlurSpec",
    "NearestDownSpec",
    "OneOfSpec",
    "PixelateSpec",
    "PoissonNoiseSpec",
    "Preset",
    "Prob",
    "QuantizeSpec",
    "Range",
    "ResizeSpec",
    "SaltPepperSpec",
    "SequenceSpec",
    "SharpenSpec",
    "ShuffleSpec",
    "SpeckleNoiseSpec",
    "Step",
    "ToneSpec",
    "VideoSpec",
    "WebpSpec",
    "video_codec_pix_fmts",
]
