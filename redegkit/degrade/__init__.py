"""Classical degradation engine: presets as data, sampled params as data, deterministic apply.

    from redegkit.degrade import get_preset, sample_degradation, apply_degradation
    preset = get_preset("realesrgan")                  # or a recipe's [presets.NAME] via user_presets
    params = sample_degradation(preset, rng)           # Degradation: plain data, JSON round trip
    lq = apply_degradation(hq, params, scale=4)        # uint8 HxWx3 -> uint8 (H//4, W//4, 3)

Sampling (all randomness, from the caller's ``numpy.random.Generator``) is apart from applying
(no randomness: noise fields come from seeds stored in the params). So one params object
applied to two images of the same size degrades both identically, noise realisation included;
ReDegNet's matched pairs rely on that. See :mod:`.spec` for the preset language and
:mod:`.presets` for the built-ins.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import numpy as np
from pydantic import Field, ValidationError

from ..config import ConfigError, StrictModel
from . import ops
from .params import ApplyContext, InterpName, OpParams, apply_op, resize_target
from .presets import BUILTIN_PRESETS, bsrgan_at
from .sampling import sample_ops
from .spec import COMBINATOR_NAMES, OP_NAMES, Preset

FORMAT = "redegkit.degradation"
VERSION = 1


class PresetError(ConfigError):
    """A preset or a params record that does not validate; the message names the place."""


class UnknownPresetError(PresetError, KeyError):
    """``get_preset`` with a name that is neither built in nor in the recipe's presets."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def _format_validation(where: str, e: ValidationError) -> str:
    lines = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "union_tag_invalid":
            tag = err.get("ctx", {}).get("tag")
            msg = (
                f"unknown op {tag!r}; known ops: {', '.join(OP_NAMES)}; "
                f"combinators: {', '.join(COMBINATOR_NAMES)}"
            )
        elif err["type"] == "union_tag_not_found":
            msg = "step has no 'op' key"
        else:
            msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"  {where}{'.' + loc if loc else ''}: {msg}")
    return "invalid degradation preset:\n" + "\n".join(lines)


def _validate_preset(name: str, spec: Any, where: str) -> Preset:
    if isinstance(spec, Preset):
        # re-validate rather than model_copy: a copy would carry the cached sha256 of the old name
        return spec if spec.name else Preset.model_validate({**spec.model_dump(), "name": name})
    if not isinstance(spec, dict):
        raise PresetError(f"{where}: a preset must be a table (dict), got {type(spec).__name__}")
    try:
        return Preset.model_validate({**spec, "name": name})
    except ValidationError as e:
        raise PresetError(_format_validation(where, e)) from None


@cache
def _builtin(name: str) -> Preset:
    return _validate_preset(name, BUILTIN_PRESETS[name], f"builtin preset {name}")


# Built-in presets whose parameters their authors define as functions of the scale factor: sampled
# for SR scale s, they are rebuilt at sf = s (BUILTIN_PRESETS holds them at x4).
SCALED_PRESETS = {"bsrgan": bsrgan_at}


@cache
def _builtin_at(name: str, scale: int) -> Preset:
    return _validate_preset(name, SCALED_PRESETS[name](scale), f"builtin preset {name} at x{scale}")


def preset_at_scale(preset: Preset, scale: int) -> Preset:
    """The preset to sample for SR scale ``scale``: the built-in ``bsrgan`` rebuilt with BSRGAN's
    parameters for sf = ``scale``; any other preset (a recipe's own included) as it is."""
    name = preset.name
    if name in SCALED_PRESETS and scale != 4 and preset.sha256 == _builtin(name).sha256:
        return _builtin_at(name, int(scale))
    return preset


def list_presets(user_presets: dict[str, Any] | None = None) -> list[str]:
    """Built-in preset names, then the recipe's own (``[presets.NAME]``), each sorted."""
    return sorted(BUILTIN_PRESETS) + sorted(user_presets or {})


def get_preset(name: str | Preset, user_presets: dict[str, Any] | None = None) -> Preset:
    """A validated :class:`Preset` by name: the recipe's ``user_presets`` first, then built-ins.

    ``user_presets`` is the dict of a recipe's ``[presets.*]`` tables (NAME -> table). A user
    preset may not reuse a built-in name (the name is recorded as provenance). Raises
    :class:`UnknownPresetError` (a ``KeyError``) listing the known names, or :class:`PresetError`.
    """
    if isinstance(name, Preset):
        return name
    user = user_presets or {}
    clash = sorted(set(user) & set(BUILTIN_PRESETS))
    if clash:
        raise PresetError(f"recipe presets {clash} reuse built-in names; give them another name")
    if name in user:
        return _validate_preset(name, user[name], f"presets.{name}")
    if name in BUILTIN_PRESETS:
        return _builtin(name)
    raise UnknownPresetError(f"unknown degradation preset {name!r}; known: {', '.join(list_presets(user))}")


class Degradation(StrictModel):
    """One sampled degradation: the ops that run, in order, with every number (seeds included)."""

    preset: str
    preset_sha256: str = ""
    final_interp: InterpName = Field(
        "bicubic", description="Resize to the output size if the ops end elsewhere."
    )
    ops: list[OpParams]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``json.dumps`` works on it); :meth:`from_json` reverses it."""
        return {"format": FORMAT, "version": VERSION, **self.model_dump(mode="json")}

    @classmethod
    def from_json(cls, d: dict[str, Any] | str) -> Degradation:
        d = dict(json.loads(d) if isinstance(d, str) else d)
        fmt, ver = d.pop("format", FORMAT), d.pop("version", VERSION)
        if fmt != FORMAT or ver != VERSION:
            raise PresetError(f"not a {FORMAT} v{VERSION} record (format={fmt!r}, version={ver!r})")
        try:
            return cls.model_validate(d)
        except ValidationError as e:
            raise PresetError(_format_validation("degradation", e)) from None


def sample_degradation(
    preset: Preset | str, rng: np.random.Generator, scale: int | None = None
) -> Degradation:
    """Draw one degradation from ``preset`` with ``rng`` (the only source of randomness).

    ``scale``: the SR scale it will be applied at; scale-dependent built-ins (``bsrgan``) then use
    their parameters for that scale (see :func:`preset_at_scale`). None: as listed (x4)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    p = get_preset(preset)
    if scale is not None:
        p = preset_at_scale(p, scale)
    return Degradation(
        preset=p.name, preset_sha256=p.sha256, final_interp=p.final_interp, ops=sample_ops(p, rng)
    )


def describe(params: Degradation) -> list[dict[str, Any]]:
    """The ops that run, in order, each a dict with its numbers (same as ``to_json()['ops']``)."""
    return [op.model_dump(mode="json") for op in params.ops]


def apply_degradation(img: np.ndarray, params: Degradation, scale: int = 1) -> np.ndarray:
    """Degrade an RGB uint8 ``HxWx3`` image into uint8 ``(H//scale, W//scale, 3)``.

    Deterministic: same params and image give identical bytes. Intermediate resizes follow the
    preset (relative to the current image, the input, or the output size); if the ops end at
    another size, a final resize with ``params.final_interp`` gives the exact output size.
    """
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        got = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
        raise ValueError(f"apply_degradation: expected an RGB uint8 HxWx3 array, got {got}")
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    h, w = img.shape[:2]
    out_hw = (h // int(scale), w // int(scale))
    if min(out_hw) < 1:
        raise ops.ImageTooSmallError(f"image {h}x{w} is smaller than the scale {scale}")
    ctx = ApplyContext(input_hw=(h, w), output_hw=out_hw)
    x = ops.to_float(img)
    for op in params.ops:
        x = apply_op(x, op, ctx)
    if x.shape[:2] != out_hw:
        x = ops.resize(x, out_hw, params.final_interp)
    return ops.to_uint8(x)


__all__ = [
    "Degradation",
    "Preset",
    "PresetError",
    "UnknownPresetError",
    "apply_degradation",
    "describe",
    "get_preset",
    "list_presets",
    "preset_at_scale",
    "resize_target",
    "sample_degradation",
]
