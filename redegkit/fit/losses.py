"""Loss terms of ``fit-degradation``, with the paper's weights as recipe defaults.

Generator side: pixel L1, VGG19 perceptual + style (:class:`~redegkit.models.perceptual.PerceptualLoss`),
same-degradation L1 between the matched embeddings, the contrastive term that pushes the real
embedding away from the synthetic one, and hinge-G. Discriminator side: hinge-D.
Every function returns a 0-dim tensor; images are [N, 3, H, W] in [-1, 1], embeddings [N, D].
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from ..config import StrictModel
from ..models.perceptual import VGG19_INDEX, PerceptualLoss


def _default_vgg_layers() -> dict[str, float]:
    return {"conv1_2": 2.0, "conv2_2": 1.2, "conv3_4": 0.6, "conv4_4": 0.2, "conv5_4": 0.1}


class LossConfig(StrictModel):
    """Weights of the fitting losses (recipe table ``[fit.loss]``); defaults are the paper's."""

    pixel: float = Field(
        10.0, ge=0, description="Weight of the L1 between each reconstruction and its target."
    )
    perceptual: float = Field(0.2, ge=0, description="Weight of the VGG19 feature L1 (perceptual) loss.")
    style: float = Field(160.0, ge=0, description="Weight of the VGG19 Gram-matrix L1 (style) loss.")
    vgg_layers: dict[str, float] = Field(
        default_factory=_default_vgg_layers, description="VGG19 layer -> weight (pre-ReLU features)."
    )
    same_degradation: float = Field(
        100.0, ge=0, description="Weight of L1(zN, zF): one degradation, one embedding."
    )
    contrastive: float = Field(4.0, ge=0, description="Numerator w of w / (scale * L1(zR, zF) + eps).")
    contrastive_scale: float = Field(10.0, gt=0, description="scale in w / (scale * L1(zR, zF) + eps).")
    contrastive_eps: float = Field(1e-7, gt=0, description="eps in w / (scale * L1(zR, zF) + eps).")
    gan: float = Field(0.01, ge=0, description="Weight of the hinge generator loss.")
    use_perceptual: bool = Field(
        True, description="Perceptual and style terms (need VGG19 weights); off in the smoke recipe."
    )

    @field_validator("vgg_layers")
    @classmethod
    def _known_layers(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = [k for k in v if k not in VGG19_INDEX]
        if unknown:
            raise ValueError(
                f"unknown VGG19 layer(s) {unknown}; e.g. conv1_2, conv2_2, conv3_4, conv4_4, conv5_4"
            )
        if not v:
            raise ValueError("vgg_layers is empty")
        return v


def pixel_loss(pred: torch.Tensor, target: torch.Tensor, weight: float = 10.0) -> torch.Tensor:
    """``weight * mean|pred - target|`` (fp32)."""
    return weight * F.l1_loss(pred.float(), target.float())


def same_degradation_loss(z_n: torch.Tensor, z_f: torch.Tensor, weight: float = 100.0) -> torch.Tensor:
    """``weight * mean|zN - zF|``: the natural and the face image got the same degradation."""
    return weight * F.l1_loss(z_n.float(), z_f.float())


def contrastive_loss(
    z_r: torch.Tensor, z_f: torch.Tensor, weight: float = 4.0, scale: float = 10.0, eps: float = 1e-7
) -> torch.Tensor:
    """``weight / (scale * mean|zR - zF| + eps)``: large when the real embedding is close to the
    synthetic one, so minimising it pushes them apart. Positive, decreasing in the distance."""
    return weight / (scale * F.l1_loss(z_r.float(), z_f.float()) + eps)


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator loss ``mean(relu(1 - real)) + mean(relu(1 + fake))`` (>= 0)."""
    return F.relu(1.0 - real_logits.float()).mean() + F.relu(1.0 + fake_logits.float()).mean()


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge generator loss ``-mean(fake)`` (unweighted; multiply by ``LossConfig.gan``)."""
    return -fake_logits.float().mean()


def build_perceptual_loss(
    cfg: LossConfig,
    weights_path: str | os.PathLike | None = None,
    *,
    reference_range_quirk: bool = False,
    random_weights: bool = False,
) -> PerceptualLoss | None:
    """The VGG19 perceptual/style loss of ``cfg``, or None when ``use_perceptual`` is off (or both
    weights are 0). Raises :class:`~redegkit.weights.WeightsMissingError` when VGG19 weights are
    missing, never falling back to random weights (``random_weights=True`` must be explicit)."""
    if not cfg.use_perceptual or (cfg.perceptual == 0 and cfg.style == 0):
        return None
    return PerceptualLoss(
        cfg.vgg_layers,
        perceptual_weight=cfg.perceptual,
        style_weight=cfg.style,
        criterion="l1",
        weights_path=weights_path,
        reference_range_quirk=reference_range_quirk,
        random_weights=random_weights,
    )
