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
Integer fields (``quality``, ``size``) take an int or an inclusive ``[lo, hi]``; ``size`` draws odd
values only. Choice fields (``interp``) take a name, a list (uniform) or a ``{name = weight}`` table.

Ops: ``blur``, ``resize``, ``nearest_down``, ``gaussian_noise``, ``poisson_noise``, ``jpeg``,
``color`` (cast, fading), ``sharpen`` (unsharp mask, halos).
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
from functools import cached_property
from typing import Annotated, Any, Literal

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


def _parse_choice(v: Any) -> tuple[tuple[str, float], ...]:
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
    for c, _ in pairs:
        if c not in INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {c!r}; known: {', '.join(INTERPOLATIONS)}")
    return tuple(pairs)


Range = Annotated[tuple[tuple[float, float], ...], BeforeValidator(_parse_range)]
IntRange = Annotated[tuple[int, int], BeforeValidator(_parse_int_range)]
InterpChoice = Annotated[tuple[tuple[str, float], ...], BeforeValidator(_parse_choice)]
Prob = Annotated[float, Field(ge=0.0, le=1.0)]


def _bounds(name: str, r: tuple[tuple[float, float], ...], lo: float, hi: float = math.inf) -> None:
    for a, b in r:
        if a < lo or b > hi:
            raise ValueError(f"{name} range [{a}, {b}] is outside [{lo}, {hi}]")


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
    | SequenceSpec
    | ShuffleSpec
    | OneOfSpec,
    Field(discriminator="op"),
]
for _m in (SequenceSpec, ShuffleSpec, OneOfSpec):
    _m.model_rebuild()

OP_NAMES = ("blur", "resize", "nearest_down", "gaussian_noise", "poisson_noise", "jpeg", "color", "sharpen")
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
