"""Loss pieces of F2N-ESRGAN training: USM-sharpened targets and the vanilla GAN loss.

The perceptual/style loss is :class:`redegkit.models.perceptual.PerceptualLoss`.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=8)
def _gauss_1d(size: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    # OpenCV's sigma for a given kernel size when sigma=0 (what Real-ESRGAN's USM relies on)
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k = torch.exp(-(t**2) / (2 * sigma**2))
    return (k / k.sum()).to(device=device, dtype=dtype)


def gaussian_blur(x: torch.Tensor, size: int) -> torch.Tensor:
    """Separable Gaussian blur of N x C x H x W, reflect-padded (replicate when too small)."""
    k = _gauss_1d(size, str(x.device), x.dtype)
    c = x.shape[1]
    pad = size // 2
    mode = "reflect" if pad < min(x.shape[-2:]) else "replicate"
    x = F.pad(x, (pad, pad, pad, pad), mode=mode)
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, size), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, size, 1), groups=c)


def usm_sharpen(
    x: torch.Tensor, weight: float = 0.5, radius: int = 50, threshold: float = 10.0
) -> torch.Tensor:
    """Unsharp mask of images in [-1, 1] (N x 3 x H x W), as Real-ESRGAN sharpens its targets.

    ``x + weight * (x - blur(x))`` where the detail exceeds ``threshold`` (0-255 scale), blended
    through a blurred mask so that flat areas (where sharpening only amplifies noise) stay put.
    """
    size = radius + 1 if radius % 2 == 0 else radius
    with torch.no_grad():
        blur = gaussian_blur(x, size)
        residual = x - blur
        mask = (residual.abs() * 127.5 > threshold).to(x.dtype)  # [-1,1] -> 0-255 units
        soft = gaussian_blur(mask, size)
        sharp = (x + weight * residual).clamp(-1, 1)
        return soft * sharp + (1 - soft) * x


def gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Vanilla GAN loss (binary cross-entropy on logits), averaged, in fp32."""
    logits = logits.float()
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)
