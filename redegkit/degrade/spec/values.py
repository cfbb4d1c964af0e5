"""The value types of the preset language, shared by every op step.

Ranges (a number, ``[lo, hi]`` or a list of ``[lo, hi]``), integer ranges, weighted name choices
and probabilities, as pydantic annotated types that parse a TOML value into one canonical tuple
form; the bound checks that the steps' validators call; and ``_Step``, the base of every step
(``p`` and ``label``). The op steps themselves are in the family modules beside this one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Annotated, Any, get_args

from pydantic import BeforeValidator, Field

from ...config import StrictModel
from .. import params as P
from ..ops import INTERPOLATIONS


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
    """name | [names] | {name = weight} | [[name, weight], ...] (how a validated preset is written
    as JSON) -> ((name, weight), ...), weights >= 0 with a positive sum."""
    if isinstance(v, tuple) and all(isinstance(c, tuple) for c in v):
        return v
    if isinstance(v, str):
        pairs = [(v, 1.0)]
    elif isinstance(v, list) and v and all(isinstance(c, (list, tuple)) and len(c) == 2 for c in v):
        pairs = [(c, _num(w, "weight")) for c, w in v]
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


class _Step(StrictModel):
    """What every step has, op steps and combinators alike."""

    p: Prob = Field(1.0, description="Probability that this step runs.")
    label: str | None = Field(None, description="Recorded with the ops this step produces.")
