"""The U-Net discriminator with spectral norm used by Real-ESRGAN and F2N-ESRGAN.

It returns a per-pixel realness map (N x 1 x H x W), which gives the generator local feedback.
Spectral norm uses the classic ``torch.nn.utils.spectral_norm`` hook (sigma in fp32 under autocast),
whose keys
(``weight_orig``, ``weight_u``, ``weight_v``) are those of the official checkpoints; the newer
parametrization API would rename them and break loading ``net_f2nD_init.pth``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .archs import StateDict, register_arch
from .redeg_layers import spectral_norm  # the classic hook, its power iteration in fp32 under autocast


class UNetDiscriminatorSN(nn.Module):
    """U-Net discriminator: 3 stride-2 downsamplings, 3 bilinear upsamplings, skip sums.

    Input: N x ``num_in_ch`` x H x W (any range; H, W multiples of 8). Output: N x 1 x H x W logits.
    """

    arch = "unet_discriminator_sn"

    def __init__(self, *, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        self.hparams: dict[str, Any] = dict(
            num_in_ch=num_in_ch, num_feat=num_feat, skip_connection=skip_connection
        )
        self.skip_connection = skip_connection
        f = num_feat
        self.conv0 = nn.Conv2d(num_in_ch, f, 3, 1, 1)
        # encoder: 4x4 stride-2 convs, no bias (spectral norm + bias-free, as the official net)
        self.conv1 = spectral_norm(nn.Conv2d(f, f * 2, 4, 2, 1, bias=False))
        self.conv2 = spectral_norm(nn.Conv2d(f * 2, f * 4, 4, 2, 1, bias=False))
        self.conv3 = spectral_norm(nn.Conv2d(f * 4, f * 8, 4, 2, 1, bias=False))
        # decoder
        self.conv4 = spectral_norm(nn.Conv2d(f * 8, f * 4, 3, 1, 1, bias=False))
        self.conv5 = spectral_norm(nn.Conv2d(f * 4, f * 2, 3, 1, 1, bias=False))
        self.conv6 = spectral_norm(nn.Conv2d(f * 2, f, 3, 1, 1, bias=False))
        # head
        self.conv7 = spectral_norm(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv8 = spectral_norm(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

    @staticmethod
    def _up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(
                f"UNetDiscriminatorSN: expected N x C x H x W with H, W multiples of 8, got {tuple(x.shape)}"
            )
        act = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        x0 = act(self.conv0(x))
        x1 = act(self.conv1(x0))
        x2 = act(self.conv2(x1))
        x3 = act(self.conv3(x2))
        x4 = act(self.conv4(self._up(x3)))
        if self.skip_connection:
            x4 = x4 + x2
        x5 = act(self.conv5(self._up(x4)))
        if self.skip_connection:
            x5 = x5 + x1
        x6 = act(self.conv6(self._up(x5)))
        if self.skip_connection:
            x6 = x6 + x0
        out = act(self.conv7(x6))
        out = act(self.conv8(out))
        return self.conv9(out)


def detect_unet_discriminator(sd: StateDict) -> dict[str, Any] | None:
    """Hyperparameters of a U-Net SN discriminator state dict, or None."""
    needed = ("conv0.weight", "conv1.weight_orig", "conv8.weight_orig", "conv9.weight")
    if not all(k in sd for k in needed):
        return None
    w0 = sd["conv0.weight"]  # [num_feat, num_in_ch, 3, 3]
    # skip_connection adds no parameters, so it cannot be read from keys; the official nets use True.
    return dict(num_in_ch=int(w0.shape[1]), num_feat=int(w0.shape[0]), skip_connection=True)


register_arch("unet_discriminator_sn", UNetDiscriminatorSN, detect_unet_discriminator)
