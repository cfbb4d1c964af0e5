"""RRDBNet: the ESRGAN / Real-ESRGAN / F2N-ESRGAN super-resolution generator.

Parameter names and shapes are the official ones (``conv_first``, ``body.N.rdbK.convJ``,
``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``), so the authors'
``net_f2n_g.pth`` and Real-ESRGAN's ``RealESRGAN_x4plus.pth`` load with ``strict=True``.

The network always upsamples by 4 internally (two nearest-x2 + conv stages). Scales 2 and 1
first fold the input with a pixel-unshuffle (x2: 4x channels, x1: 16x channels), as
Real-ESRGAN does, so the same weights layout serves x1, x2 and x4.

Value range: :meth:`RRDBNet.forward` takes and returns images in **[-1, 1]** whatever the
weights were trained for. ``input_range`` records what the *weights* expect: F2N-ESRGAN
(the reference) trains on [-1, 1]; Real-ESRGAN trains on [0, 1]. With ``"[0,1]"`` the module
maps its input to [0, 1] and its output back, so callers never need to know.
"""

from __future__ import annotations

from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from .archs import StateDict, register_arch

InputRange = Literal["[-1,1]", "[0,1]"]
INPUT_RANGES: tuple[str, ...] = ("[-1,1]", "[0,1]")
# scale -> pixel-unshuffle factor applied before the x4 trunk
_UNSHUFFLE = {4: 1, 2: 2, 1: 4}


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs; the output is scaled by 0.2 and added to the input."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        g = num_grow_ch
        self.conv1 = nn.Conv2d(num_feat, g, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + g, g, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * g, g, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * g, g, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * g, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x  # residual scaling keeps the very deep trunk stable


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, scaled residual."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """RRDB super-resolution generator.

    Input: float NCHW in [-1, 1], C = ``num_in_ch``; for scale 2 (1) H and W must be
    multiples of 2 (4). Output: NCHW in roughly [-1, 1] (not clamped), ``scale`` x larger.

    ``residual``: the network's output is added to the input (x1) or to its bicubic enlargement,
    so a fresh network (its last convolution zero) is the identity, or bicubic at x2/x4, in
    either input range, and learns only the correction (a small network
    trained briefly, as ``eval downstream``'s restorer, then improves on its input). Not part of the
    ESRGAN / Real-ESRGAN file format: such a generator cannot be exported for other tools.
    """

    arch = "rrdbnet"

    def __init__(
        self,
        *,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
        scale: int = 4,
        input_range: InputRange = "[-1,1]",
        residual: bool = False,
    ) -> None:
        super().__init__()
        if scale not in _UNSHUFFLE:
            raise ValueError(f"RRDBNet: scale must be 1, 2 or 4, got {scale}")
        if input_range not in INPUT_RANGES:
            raise ValueError(f"RRDBNet: input_range must be one of {INPUT_RANGES}, got {input_range!r}")
        self.hparams: dict[str, Any] = dict(
            num_in_ch=num_in_ch,
            num_out_ch=num_out_ch,
            num_feat=num_feat,
            num_block=num_block,
            num_grow_ch=num_grow_ch,
            scale=scale,
            input_range=input_range,
        )
        if residual:  # recorded only when on: every other generator's hparams stay as they were
            self.hparams["residual"] = True
        self.residual = bool(residual)
        self.scale = scale
        self.input_range = input_range
        self.unshuffle = _UNSHUFFLE[scale]
        self.conv_first = nn.Conv2d(num_in_ch * self.unshuffle**2, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        if residual:  # a fresh residual generator is exactly the identity (x1) or bicubic (x2, x4)
            nn.init.zeros_(self.conv_last.weight)
            nn.init.zeros_(cast(torch.Tensor, self.conv_last.bias))

    @property
    def pad_multiple(self) -> int:
        """Input H and W must be multiples of this (pixel-unshuffle factor)."""
        return self.unshuffle

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.hparams["num_in_ch"]:
            raise ValueError(
                f"RRDBNet: expected N x {self.hparams['num_in_ch']} x H x W, got {tuple(x.shape)}"
            )
        skip = x
        if self.input_range == "[0,1]":
            x = (x + 1.0) * 0.5
        feat = F.pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2.0, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2.0, mode="nearest")))
        out = self.conv_last(self.lrelu(self.conv_hr(feat)))
        if self.residual:  # out is a correction: in [0,1] units it only scales, no -1 offset
            if self.input_range == "[0,1]":
                out = out * 2.0
            if self.scale > 1:
                skip = F.interpolate(
                    skip, scale_factor=float(self.scale), mode="bicubic", align_corners=False
                )
            return out + skip
        if self.input_range == "[0,1]":
            out = out * 2.0 - 1.0
        return out


def detect_rrdbnet(sd: StateDict) -> dict[str, Any] | None:
    """Hyperparameters of an RRDBNet state dict (ours, F2N-ESRGAN or Real-ESRGAN), or None.

    The input range cannot be read from keys: it defaults to "[-1,1]" (F2N-ESRGAN); pass
    ``input_range="[0,1]"`` to :func:`load_checkpoint` for Real-ESRGAN weights.
    """
    needed = (
        "conv_first.weight",
        "conv_body.weight",
        "conv_up1.weight",
        "conv_up2.weight",
        "conv_hr.weight",
        "conv_last.weight",
        "body.0.rdb1.conv1.weight",
    )
    if not all(k in sd for k in needed):
        return None
    first = sd["conv_first.weight"]  # [num_feat, num_in_ch * unshuffle^2, 3, 3]
    last = sd["conv_last.weight"]  # [num_out_ch, num_feat, 3, 3]
    grow = sd["body.0.rdb1.conv1.weight"]  # [num_grow_ch, num_feat, 3, 3]
    num_feat = int(first.shape[0])
    num_out_ch = int(last.shape[0])
    # number of RRDB blocks = distinct N in "body.N.*"
    num_block = len({k.split(".")[1] for k in sd if k.startswith("body.")})
    # conv_first in-channels = out_ch * unshuffle^2 for the usual 3->3 / 1->1 models:
    # 3 -> x4, 12 -> x2, 48 -> x1 (Real-ESRGAN's convention).
    in_ch = int(first.shape[1])
    scale = None
    for s, u in _UNSHUFFLE.items():
        if in_ch == num_out_ch * u * u:
            scale = s
    if scale is None:
        return None
    return dict(
        num_in_ch=in_ch // (_UNSHUFFLE[scale] ** 2),
        num_out_ch=num_out_ch,
        num_feat=num_feat,
        num_block=num_block,
        num_grow_ch=int(grow.shape[0]),
        scale=scale,
        input_range="[-1,1]",
    )


register_arch("rrdbnet", RRDBNet, detect_rrdbnet)
