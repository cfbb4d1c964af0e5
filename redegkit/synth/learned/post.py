"""Post steps: what a learned run adds after the bank's calibration, before the JPEG, the noise of
the spec and the downsampling.

A step is drawn per sample in the source stage (``draw``: JSON-able parameters from the sample's
own seed, or None when it does not apply; they are recorded in the sample JSON under
``method.post.<name>``) and applied per batch in the device stage (``apply``: float images in
[-1, 1], [N, 3, H, W], with one parameter entry per image). A step that is off for a run draws
None for every sample, and the output is unchanged byte for byte.

To add a step: write a class with ``name``, ``draw`` and ``apply`` here and add it to
:data:`STEPS`, with the options it reads in :class:`~redegkit.synth.config.SynthConfig`.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import torch

from ...rng import sample_rng
from ..config import SynthConfig
from .plan import CalibrationPost, SamplePlan


class PostStep(Protocol):
    name: str

    def draw(self, cfg: SynthConfig, key: str) -> Any | None: ...

    def apply(self, y: torch.Tensor, params: list[Any | None]) -> torch.Tensor: ...


class Gamma:
    """A gamma curve: ``y' = 2 ((y + 1) / 2) ** g - 1``, ``g`` log-uniform in
    ``[1 / gamma_max, gamma_max]`` from the sample's own seed (``SynthConfig.gamma_max``)."""

    name = "gamma"

    def draw(self, cfg: SynthConfig, key: str) -> float | None:
        if not cfg.gamma_max or cfg.gamma_max == 1.0:
            return None
        span = math.log(cfg.gamma_max)
        return round(math.exp(float(sample_rng(cfg.seed, key, "gamma").uniform(-span, span))), 6)

    def apply(self, y: torch.Tensor, params: list[Any | None]) -> torch.Tensor:
        g = torch.tensor([1.0 if p is None else float(p) for p in params], device=y.device)[
            :, None, None, None
        ]
        return ((y.clamp(-1.0, 1.0) + 1.0) / 2.0).pow(g) * 2.0 - 1.0


STEPS: tuple[PostStep, ...] = (Gamma(),)


def draw_post_steps(steps: tuple[PostStep, ...], cfg: SynthConfig, key: str, plan: SamplePlan) -> SamplePlan:
    """``plan`` with the steps' parameters for this sample in its ``post`` (unchanged when none
    applies)."""
    drawn = {s.name: p for s in steps if (p := s.draw(cfg, key)) is not None}
    if not drawn:
        return plan
    base = plan.post.model_dump(exclude_none=True) if plan.post is not None else {"strength": plan.strength}
    post = CalibrationPost.model_construct(**base, steps=drawn)
    return plan.model_copy(update={"post": post})


def apply_post_steps(
    steps: tuple[PostStep, ...], y: torch.Tensor, drawn: list[dict[str, Any] | None]
) -> torch.Tensor:
    """Apply every step to the rows of ``y`` that drew it (``drawn[i]``: sample i's step params)."""
    for step in steps:
        params = [None if d is None else d.get(step.name) for d in drawn]
        if any(p is not None for p in params):
            y = step.apply(y, params)
    return y
