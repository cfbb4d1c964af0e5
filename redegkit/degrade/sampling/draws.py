"""The draws every sampler is made of, each from the caller's numpy Generator.

A value from a parsed :data:`~redegkit.degrade.spec.Range` (:func:`draw`, log-uniform
:func:`_log_draw`), an index from weights (:func:`pick`) or a name from a choice (:func:`_pick_name`,
:func:`_name`), a coin (:func:`_chance`), integers (:func:`_int`, :func:`_odd`), plus
:func:`_as_spec`, which lets every ``sample_<op>`` take its spec model or the spec's dict. The
number of values each helper draws is part of the sampled params' reproducibility: a helper that
needs no randomness (one sub-range, ``lo == hi``, ``p`` of 0 or 1) draws nothing.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar, get_args

import numpy as np
from pydantic import BaseModel

SpecT = TypeVar("SpecT", bound=BaseModel)


def draw(rng: np.random.Generator, r: tuple[tuple[float, float], ...]) -> float:
    """Sample a parsed :data:`Range`: pick a sub-range uniformly, then uniform inside it."""
    lo, hi = r[0] if len(r) == 1 else r[int(rng.integers(len(r)))]
    return lo if lo == hi else float(rng.uniform(lo, hi))


def pick(rng: np.random.Generator, weights: list[float] | tuple[float, ...]) -> int:
    """Index drawn with probability proportional to ``weights`` (one uniform draw)."""
    if len(weights) == 1:
        return 0
    u = rng.random() * sum(weights)
    acc = 0.0
    for i, w in enumerate(weights):
        acc += w
        if u < acc:
            return i
    return len(weights) - 1  # u == total after rounding


def _pick_name(rng: np.random.Generator, choice: tuple[tuple[str, float], ...]) -> str:
    return choice[pick(rng, [w for _, w in choice])][0]


def _as_spec(cls: type[SpecT], spec: SpecT | dict[str, Any]) -> SpecT:
    """Accept a spec model or its dict form (``{"sigma": [1, 5], ...}``; ``op`` may be left out)."""
    if isinstance(spec, cls):
        return spec
    if not isinstance(spec, dict):
        raise TypeError(f"expected a {cls.__name__} or a dict, got {type(spec).__name__}")
    op = get_args(cls.model_fields["op"].annotation)[0]  # the Literal's one value
    return cls.model_validate({"op": op, **spec})


def _chance(rng: np.random.Generator, p: float) -> bool:
    """True with probability ``p``; draws nothing when p is 0 or 1."""
    if p <= 0:
        return False
    return True if p >= 1 else bool(rng.random() < p)


def _int(rng: np.random.Generator, r: tuple[int, int]) -> int:
    """An integer in the inclusive range (no draw when lo == hi)."""
    lo, hi = r
    return lo if lo == hi else int(rng.integers(lo, hi + 1))


def _odd(rng: np.random.Generator, r: tuple[int, int]) -> int:
    odd = [n for n in range(r[0], r[1] + 1) if n % 2]
    return odd[0] if len(odd) == 1 else odd[int(rng.integers(len(odd)))]


def _log_draw(rng: np.random.Generator, r: tuple[tuple[float, float], ...]) -> float:
    """Log-uniform inside a sub-range picked uniformly (all bounds > 0)."""
    lo, hi = r[0] if len(r) == 1 else r[int(rng.integers(len(r)))]
    return lo if lo == hi else float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _polar(length: float, angle_deg: float) -> tuple[float, float]:
    """(dy, dx) of a displacement of ``length`` pixels at ``angle_deg`` (0: right, 90: up on screen)."""
    a = math.radians(angle_deg)
    return (-length * math.sin(a), length * math.cos(a))


def _name(rng: np.random.Generator, choice: tuple[tuple[str, float], ...]) -> Any:
    """A drawn name, typed Any: the spec validated it against the params' Literal."""
    return _pick_name(rng, choice)
