"""Building blocks of the ReDegNet networks: channel table, spectral-norm convs, the modulated
convolution (two implementations), StyledConv, ToRGB and the SN residual discriminator blocks.

Attribute names and nesting follow the official networks exactly, because they become the
state-dict keys that the authors' published weights use (see ``redeg.py``).
"""

from __future__ import annotations

import math
from typing import Any, Literal, TypeVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm as _torch_spectral_norm
from torch.nn.utils.spectral_norm import SpectralNorm

ModConvMode = Literal["fused", "grouped"]
MODCONV_MODES: tuple[str, ...] = ("fused", "grouped")

# Resolution -> channels at channel_multiplier 1 (the StyleGAN2 table the reference uses).
BASE_CHANNELS: dict[int, int] = {
    4: 512,
    8: 512,
    16: 512,
    32: 512,
    64: 256,
    128: 128,
    256: 64,
    512: 32,
    1024: 16,
}


def scaled(c: int, width: float) -> int:
    """``c`` channels scaled by ``width`` (at least 1). width 1.0 returns ``c`` unchanged."""
    return max(1, int(round(c * width)))


def channel_table(width: float = 1.0) -> dict[int, int]:
    """The channel table scaled by ``width``; ``width=1.0`` reproduces the official table."""
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width}")
    return {res: scaled(c, width) for res, c in BASE_CHANNELS.items()}


def check_size(size: int, lo: int = 8, hi: int = 1024) -> int:
    """Validate a power-of-two network size and return log2(size)."""
    if not isinstance(size, int) or size < lo or size > hi or size & (size - 1):
        raise ValueError(f"size must be a power of two in [{lo}, {hi}], got {size!r}")
    return int(math.log2(size))


class FP32SpectralNorm(SpectralNorm):
    """The classic spectral-norm hook with its power iteration and sigma in fp32 under autocast.

    On CUDA, autocast runs ``torch.mv`` in bf16: sigma would carry 3 significant digits and every
    normalised weight an error of up to ~0.4 % that changes from step to step. The hook is the
    same object otherwise (same keys, buffers and state-dict hooks)."""

    def __call__(self, module: nn.Module, inputs: Any) -> None:
        device = getattr(module, self.name + "_orig").device.type
        with torch.autocast(device_type=device, enabled=False):
            super().__call__(module, inputs)


ModuleT = TypeVar("ModuleT", bound=nn.Module)


def spectral_norm(module: ModuleT, name: str = "weight") -> ModuleT:
    """``torch.nn.utils.spectral_norm`` (classic hook and keys) computed in fp32 under autocast."""
    module = _torch_spectral_norm(module, name=name)
    for hook in module._forward_pre_hooks.values():
        if type(hook) is SpectralNorm and hook.name == name:
            hook.__class__ = FP32SpectralNorm
    return module


def sn_conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
    """Conv2d (padding k//2) wrapped in the classic spectral norm (keys weight_orig/_u/_v)."""
    return spectral_norm(nn.Conv2d(cin, cout, k, stride, k // 2))


def sn_conv_act(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """``[SN conv 3x3, LReLU(0.2)]``: gives the official ``<name>.0.weight_orig`` keys."""
    return nn.Sequential(sn_conv(cin, cout, 3, stride), nn.LeakyReLU(0.2))


@torch.no_grad()
def warm_spectral_norm(module: nn.Module, n_iter: int = 15) -> None:
    """Run ``n_iter`` power iterations on every classic spectral-norm layer's ``u``/``v``.

    Classic spectral norm starts from random ``u``, ``v`` and iterates once per training-mode
    forward, so a freshly built net in eval mode divides by a poor estimate of sigma and its
    activations blow up through the layers. Converging the estimate at construction makes fresh
    nets usable in eval mode (tests, benchmarks, inference before training). Loading a state
    dict overwrites ``u`` and ``v`` anyway.
    """
    for m in module.modules():
        for hook in m._forward_pre_hooks.values():
            if not isinstance(hook, SpectralNorm):
                continue
            w = hook.reshape_weight_to_matrix(getattr(m, hook.name + "_orig"))
            u, v = getattr(m, hook.name + "_u"), getattr(m, hook.name + "_v")
            for _ in range(n_iter):
                v.copy_(F.normalize(w.t() @ u, dim=0, eps=hook.eps))
                u.copy_(F.normalize(w @ v, dim=0, eps=hook.eps))


class PixelNorm(nn.Module):
    """x / sqrt(mean(x^2 over dim 1) + 1e-8)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated convolution (no equalised lr; scale 1/sqrt(in*k*k)).

    ``modulation`` is Linear(style_dim, in). ``weight`` is held as [out, in, k, k] so that
    ``module.to(memory_format=torch.channels_last)`` works (a 5-D tensor cannot be channels_last),
    but the state dict shows the official [1, out, in, k, k] and loads it. With ``upsample`` the input
    is first upsampled x2 bilinearly
    (align_corners=False). ``mode`` picks the implementation, both computing the same function:

    - ``"grouped"``: per-sample weights ``scale*W*s`` (demodulated), one grouped conv over the
      batch. This is the reference's way.
    - ``"fused"``: scale the input channels by ``s``, one conv with the shared weight, then scale
      the output channels by the demodulation factor. No per-sample weights are materialised, so
      it runs as an ordinary conv (fast with cuDNN, bf16 autocast and channels_last).
    """

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        *,
        demodulate: bool = True,
        upsample: bool = False,
        mode: ModConvMode = "fused",
    ) -> None:
        super().__init__()
        self.in_channel, self.out_channel, self.kernel_size = in_channel, out_channel, kernel_size
        self.demodulate, self.upsample = demodulate, upsample
        self.scale = 1.0 / math.sqrt(in_channel * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(out_channel, in_channel, kernel_size, kernel_size))
        self.modulation = nn.Linear(style_dim, in_channel)
        self.mode: str = "fused"
        self.set_mode(mode)

    def set_mode(self, mode: str) -> None:
        if mode not in MODCONV_MODES:
            raise ValueError(f"modconv mode must be one of {MODCONV_MODES}, got {mode!r}")
        self.mode = mode

    def extra_repr(self) -> str:
        return (
            f"{self.in_channel}, {self.out_channel}, k={self.kernel_size}, demodulate={self.demodulate}, "
            f"upsample={self.upsample}, mode={self.mode}"
        )

    # The official layout [1, out, in, k, k] in state dicts; the 4-D parameter in memory.
    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination[prefix + "weight"] = destination[prefix + "weight"].unsqueeze(0)

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        w = state_dict.get(prefix + "weight")
        if isinstance(w, torch.Tensor) and w.dim() == 5 and w.shape[0] == 1:
            state_dict[prefix + "weight"] = w[0]  # load_state_dict hands each module its own copy of the dict
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False) if self.upsample else x

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x [N, in, H, W], w [N, style_dim] -> [N, out, H', W'] (H' = 2H with upsample)."""
        s = self.modulation(w)  # [N, in]
        if self.mode == "grouped":
            return self._forward_grouped(x, s)
        return self._forward_fused(x, s)

    def _forward_fused(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        weight = self.weight * self.scale  # [out, in, k, k]
        # Per-channel scaling commutes with the (per-channel) bilinear upsample, so scale the
        # smaller tensor first.
        x = x * s.reshape(n, self.in_channel, 1, 1).to(x.dtype)
        out = F.conv2d(self._up(x), weight.to(x.dtype), padding=self.padding)
        if self.demodulate:
            # d[n, o] = rsqrt(sum_i s[n,i]^2 * sum_kk (scale*W[o,i])^2 + 1e-8), the same number the
            # grouped path gets from its per-sample weight. Kept in fp32 as elementwise ops
            # (not a matmul), so autocast does not drop it to bf16.
            w2 = weight.float().pow(2).sum(dim=(2, 3))  # [out, in]
            d = torch.rsqrt((s.float().pow(2).unsqueeze(1) * w2.unsqueeze(0)).sum(dim=2) + 1e-8)  # [N, out]
            out = out * d.reshape(n, self.out_channel, 1, 1).to(out.dtype)
        return out

    def _forward_grouped(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        weight = (
            self.scale * self.weight.unsqueeze(0) * s.reshape(n, 1, self.in_channel, 1, 1)
        )  # [N, out, in, k, k]
        if self.demodulate:
            d = torch.rsqrt(weight.pow(2).sum(dim=(2, 3, 4)) + 1e-8)
            weight = weight * d.reshape(n, self.out_channel, 1, 1, 1)
        weight = weight.reshape(n * self.out_channel, self.in_channel, self.kernel_size, self.kernel_size)
        x = self._up(x)
        h, wd = x.shape[-2:]
        # reshape (not view): a channels_last input is not viewable as [1, N*C, H, W].
        out = F.conv2d(
            x.reshape(1, n * self.in_channel, h, wd), weight.to(x.dtype), padding=self.padding, groups=n
        )
        return out.reshape(n, self.out_channel, out.shape[-2], out.shape[-1])


class NoiseInjection(nn.Module):
    """``x + weight * noise`` with one scalar weight initialised to 0. Here the "noise" is an
    encoder feature map with the same shape as ``x``; ``None`` leaves ``x`` unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            return x
        return x + self.weight * noise


class StyledConv(nn.Module):
    """ModulatedConv2d (demodulated, optional x2 upsample) -> NoiseInjection -> SN conv 3x3 + LReLU."""

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        style_dim: int,
        *,
        upsample: bool = False,
        mode: ModConvMode = "fused",
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, out_channel, 3, style_dim, upsample=upsample, mode=mode)
        self.noise = NoiseInjection()
        self.conv2 = sn_conv_act(out_channel, out_channel)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv2(self.noise(self.conv(x, w), noise))


class ToRGB(nn.Module):
    """Modulated 1x1 conv to RGB (no demodulation) + bias + (x2-upsampled) skip, then tanh."""

    def __init__(
        self, in_channel: int, style_dim: int, *, upsample: bool = True, mode: ModConvMode = "fused"
    ) -> None:
        super().__init__()
        self.upsample = upsample
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False, mode=mode)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, w) + self.bias
        if skip is not None:
            if self.upsample:
                skip = F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
            out = out + skip
        # tanh at every ToRGB, on the running sum (as the reference does).
        return torch.tanh(out)


class InputConv(nn.Module):
    """The generator's input layer (official name ``inputself``): SN conv 3x3 + LReLU on the
    deepest encoder map. It replaces StyleGAN2's learned constant."""

    def __init__(self, channel: int) -> None:
        super().__init__()
        self.conv = sn_conv_act(channel, channel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class SynResBlock(nn.Module):
    """SN conv 3x3, LReLU, SN conv 3x3, plus an SN 1x1 skip; no activation after the sum."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = sn_conv(cin, cin, 3)
        self.conv2 = sn_conv(cin, cout, 3)
        self.act = nn.LeakyReLU(0.2)
        self.skip = sn_conv(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(x))) + self.skip(x)


def _xavier_conv(cin: int, cout: int, k: int, gain: float) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, k, 1, k // 2)
    nn.init.xavier_uniform_(conv.weight, gain)
    return conv


class DiscFirstBlock(nn.Module):
    """First residual block: SN conv, LReLU, SN conv, avgpool 2; bypass avgpool 2 then SN 1x1.

    The convs are registered both by name (``conv1``, ``conv2``, ``bypass_conv``) and inside the
    ``model``/``bypass`` Sequentials, as in the reference, so the state dict holds each SN conv
    under two keys (the same tensors). Official files hold both; both load.
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        # Xavier init (gain 1, bypass sqrt 2): the SNGAN recipe the reference uses.
        self.conv1 = spectral_norm(_xavier_conv(cin, cout, 3, 1.0))
        self.conv2 = spectral_norm(_xavier_conv(cout, cout, 3, 1.0))
        self.bypass_conv = spectral_norm(_xavier_conv(cin, cout, 1, math.sqrt(2)))
        self.model = nn.Sequential(self.conv1, nn.LeakyReLU(0.2), self.conv2, nn.AvgPool2d(2))
        self.bypass = nn.Sequential(nn.AvgPool2d(2), self.bypass_conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) + self.bypass(x)


class DiscDownBlock(nn.Module):
    """Residual down block: ReLU, SN conv, ReLU, SN conv, avgpool 2; bypass SN 1x1 then avgpool 2.

    Registration order (conv1, conv2, model, bypass, bypass_conv) reproduces the official key order.
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = spectral_norm(_xavier_conv(cin, cout, 3, 1.0))
        self.conv2 = spectral_norm(_xavier_conv(cout, cout, 3, 1.0))
        self.model = nn.Sequential(nn.ReLU(), self.conv1, nn.ReLU(), self.conv2, nn.AvgPool2d(2))
        self.bypass = nn.Sequential()  # placeholder keeps the official registration order
        self.bypass_conv = spectral_norm(_xavier_conv(cin, cout, 1, math.sqrt(2)))
        self.bypass = nn.Sequential(self.bypass_conv, nn.AvgPool2d(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) + self.bypass(x)


class DiscTrunk(nn.Module):
    """The official ``netD`` submodule: ``models`` (blocks), ``fc`` and ``fc2`` (SN linears)."""

    def __init__(self, blocks: list[nn.Module], feat: int, style_dim: int) -> None:
        super().__init__()
        self.models = nn.Sequential(*blocks)
        fc = nn.Linear(feat + style_dim, feat)
        nn.init.xavier_uniform_(fc.weight, 1.0)
        self.fc = spectral_norm(fc)
        self.fc2 = spectral_norm(nn.Linear(feat, 1))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = self.models(x)
        # The reference ends with AvgPool2d(8) on the 8x8 map of a 256 input; a global mean is the
        # same number there and also works for other input sizes.
        h = h.mean(dim=(2, 3))
        # No activation between fc and fc2 (as in the reference).
        return self.fc2(self.fc(torch.cat([h, z.to(h.dtype)], dim=1)))
