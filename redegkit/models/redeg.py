"""The ReDegNet networks: DegNet, SynNetEncoder, SynNetGenerator and ReDegSNDiscriminator.

At the default hyperparameters every ``state_dict()`` has exactly the official key names and
shapes (``shared/reference/official_state_dict_keys.json``), so the authors' published
``net_deg_init.pth``, ``net_synE_init.pth``, ``net_synG_init.pth`` and ``net_synD_init.pth``
load with ``strict=True`` through :func:`redegkit.models.load_checkpoint`. ``width`` scales the
channel table (1.0 reproduces it exactly) so tests can use tiny networks with the same code.

Images are float NCHW in [-1, 1]. Layers live in :mod:`redegkit.models.redeg_layers`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .archs import StateDict, register_arch
from .redeg_layers import (
    MODCONV_MODES,
    DiscDownBlock,
    DiscFirstBlock,
    DiscTrunk,
    InputConv,
    ModConvMode,
    ModulatedConv2d,
    PixelNorm,
    StyledConv,
    SynResBlock,
    ToRGB,
    channel_table,
    check_size,
    scaled,
    sn_conv,
    sn_conv_act,
    warm_spectral_norm,
)

__all__ = [
    "DegNet",
    "ModulatedConv2d",
    "ReDegSNDiscriminator",
    "StyledConv",
    "SynNetEncoder",
    "SynNetGenerator",
    "ToRGB",
    "set_modconv",
]


def _check_image(x: torch.Tensor, channels: int, what: str) -> None:
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{what}: expected a [N, {channels}, H, W] tensor, got shape {tuple(x.shape)}")


class DegNet(nn.Module):
    """Degradation encoder: ``cat([hq, lq], 1)`` [N, 6, size, size] -> embedding [N, style_dim].

    SN conv 3x3 (6 -> ch[size]) then stride-2 SN convs down to ch[4] x 4 x 4, each with LReLU;
    flatten -> Linear(16*ch[4], style_dim), LReLU, Linear(style_dim, style_dim). The embedding
    is not normalised, and fp32 also under autocast. The input must be exactly ``size`` x ``size``
    (the first linear layer fixes the spatial size).
    """

    def __init__(self, *, size: int = 256, style_dim: int = 512, width: float = 1.0) -> None:
        super().__init__()
        self.arch = "redeg_degnet"
        self.hparams: dict[str, Any] = {"size": size, "style_dim": style_dim, "width": width}
        log = check_size(size)
        self.size, self.style_dim = size, style_dim
        ch = channel_table(width)
        self.deg_ecd0 = sn_conv_act(6, ch[size])
        cin = ch[size]
        # deg_ecd1..: stride-2 convs, output resolutions size/2 ... 4.
        for j, res_log in enumerate(range(log - 1, 1, -1), start=1):
            setattr(self, f"deg_ecd{j}", sn_conv_act(cin, ch[2**res_log], stride=2))
            cin = ch[2**res_log]
        self.n_layers = log - 1
        self.final_linear = nn.Sequential(
            nn.Linear(ch[4] * 16, style_dim), nn.LeakyReLU(0.2), nn.Linear(style_dim, style_dim)
        )
        warm_spectral_norm(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x = cat([hq, lq], dim=1), [N, 6, size, size] in [-1, 1] -> [N, style_dim]."""
        _check_image(x, 6, "DegNet input cat([hq, lq], 1)")
        if x.shape[-2] != self.size or x.shape[-1] != self.size:
            raise ValueError(
                f"DegNet(size={self.size}) needs inputs of exactly {self.size}x{self.size}, "
                f"got {x.shape[-2]}x{x.shape[-1]} (crop or resize the pair first)"
            )
        for j in range(self.n_layers):
            x = getattr(self, f"deg_ecd{j}")(x)
        # The embedding feeds the 100·L1 (same degradation) and 1/L1 (contrastive) terms, where
        # bf16's 8-bit mantissa would quantise small differences: the head runs in fp32 always.
        x = torch.flatten(x, 1)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.final_linear(x.float())


class SynNetEncoder(nn.Module):
    """Content encoder of the HQ image: [N, 3, H, W] -> feature maps, deepest first.

    Output: ``[ecdf(x_d), x_d, x_2d, ..., x_H]`` where ``x_r`` is the map at resolution ``r``
    (``d = H / 2**(log2(size)-2)``, i.e. 4 for a ``size`` input). ``len == log2(size)``.
    Fully convolutional: any H, W divisible by ``2**(log2(size)-2)`` (64 at size 256) works.
    """

    def __init__(self, *, size: int = 256, width: float = 1.0) -> None:
        super().__init__()
        self.arch = "redeg_syn_encoder"
        self.hparams: dict[str, Any] = {"size": size, "width": width}
        log = check_size(size)
        self.size = size
        ch = channel_table(width)
        self.ecd0 = sn_conv_act(3, ch[size])
        cin = ch[size]
        for j, res_log in enumerate(range(log - 1, 1, -1), start=1):
            setattr(self, f"ecd{j}", sn_conv_act(cin, ch[2**res_log], stride=2))
            cin = ch[2**res_log]
        self.n_layers = log - 1
        self.multiple = 2 ** (log - 2)
        self.ecdf = nn.Sequential(sn_conv(ch[4], ch[4], 3), nn.LeakyReLU(0.2), SynResBlock(ch[4], ch[4]))
        warm_spectral_norm(self)

    def forward(self, hq: torch.Tensor) -> list[torch.Tensor]:
        """hq [N, 3, H, W] in [-1, 1] -> list of log2(size) maps, deepest first."""
        _check_image(hq, 3, "SynNetEncoder input")
        h, w = hq.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise ValueError(
                f"SynNetEncoder(size={self.size}) needs H and W divisible by {self.multiple}, got {h}x{w} "
                "(pad or crop the image first)"
            )
        feats = []
        x = hq
        for j in range(self.n_layers):
            x = getattr(self, f"ecd{j}")(x)
            feats.append(x)
        feats.append(self.ecdf(x))
        return feats[::-1]


class SynNetGenerator(nn.Module):
    """Applies a degradation embedding to content: ``(z [N, style_dim], features) -> LQ``.

    ``features`` is :class:`SynNetEncoder`'s output (deepest first). The MLP ``style`` maps z to
    w (shared by every layer); ``inputself`` convolves the deepest map; then StyledConv/ToRGB
    per resolution, each upsampling StyledConv adding the encoder map of its resolution. Output:
    [N, 3, H, W] in [-1, 1] at the encoder input's resolution. A z with batch 1 is broadcast to
    the features' batch.
    """

    def __init__(
        self,
        *,
        size: int = 256,
        style_dim: int = 512,
        n_mlp: int = 8,
        width: float = 1.0,
        modconv: ModConvMode = "fused",
    ) -> None:
        super().__init__()
        if modconv not in MODCONV_MODES:
            raise ValueError(f"modconv must be one of {MODCONV_MODES}, got {modconv!r}")
        self.arch = "redeg_syn_generator"
        self.hparams: dict[str, Any] = {
            "size": size,
            "style_dim": style_dim,
            "n_mlp": n_mlp,
            "width": width,
            "modconv": modconv,
        }
        log = check_size(size)
        self.size, self.style_dim = size, style_dim
        ch = channel_table(width)
        layers: list[nn.Module] = [PixelNorm()]
        for _ in range(n_mlp):
            layers += [nn.Linear(style_dim, style_dim), nn.LeakyReLU(0.2)]
        self.style = nn.Sequential(*layers)
        self.inputself = InputConv(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], style_dim, mode=modconv)
        self.to_rgb1 = ToRGB(ch[4], style_dim, upsample=False, mode=modconv)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        cin = ch[4]
        for res_log in range(3, log + 1):
            cout = ch[2**res_log]
            self.convs.append(StyledConv(cin, cout, style_dim, upsample=True, mode=modconv))
            self.convs.append(StyledConv(cout, cout, style_dim, mode=modconv))
            self.to_rgbs.append(ToRGB(cout, style_dim, mode=modconv))
            cin = cout
        self.n_features = log  # what the encoder of the same size returns
        # The second StyledConv of each resolution gets no noise map, so its noise weight (an
        # official key) never takes part in the forward. Frozen, so DDP does not wait for its
        # gradient and optimisers skip it.
        for conv in self.convs[1::2]:
            assert isinstance(conv, StyledConv)  # (a ModuleList holds modules of any type)
            conv.noise.weight.requires_grad_(False)
        warm_spectral_norm(self)

    def forward(
        self, z: torch.Tensor, features: list[torch.Tensor] | tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        """z [N or 1, style_dim], features (deepest first) -> LQ [N, 3, H, W] in [-1, 1]."""
        if len(features) != self.n_features:
            raise ValueError(
                f"SynNetGenerator(size={self.size}) expects {self.n_features} encoder maps (deepest first), "
                f"got {len(features)}; use a SynNetEncoder of the same size"
            )
        if z.ndim != 2 or z.shape[1] != self.style_dim:
            raise ValueError(f"z: expected [N, {self.style_dim}], got shape {tuple(z.shape)}")
        n = features[0].shape[0]
        w = self.style(z)
        if w.shape[0] != n:
            if w.shape[0] != 1:
                raise ValueError(f"z batch {w.shape[0]} does not match features batch {n} (nor is it 1)")
            w = w.expand(n, -1)
        out = self.inputself(features[0])
        out = self.conv1(out, w, features[1])
        skip = self.to_rgb1(out, w)
        for k, to_rgb in enumerate(self.to_rgbs):
            out = self.convs[2 * k](out, w, features[k + 2])
            out = self.convs[2 * k + 1](out, w)
            skip = to_rgb(out, w, skip)
        return skip


class ReDegSNDiscriminator(nn.Module):
    """Conditional SN discriminator for fitting: ``(img, hq, z) -> logits [N, 1]``.

    ``cat([img, hq], 1)`` -> first residual block (6 -> 64) -> ``log2(size) - 4`` residual down
    blocks (64 -> 128 -> 256 -> 512 -> 512, capped at 512) -> spatial mean -> cat z ->
    SN Linear(512 + style_dim, 512) -> SN Linear(512, 1). Channels scale with ``width``. Inputs
    must have H, W divisible by ``2**(log2(size) - 3)``; at ``size`` the last map is 8x8, as in
    the reference.
    """

    def __init__(self, *, size: int = 256, style_dim: int = 512, width: float = 1.0) -> None:
        super().__init__()
        self.arch = "redeg_discriminator"
        self.hparams: dict[str, Any] = {"size": size, "style_dim": style_dim, "width": width}
        log = check_size(size, lo=16)
        self.size, self.style_dim = size, style_dim
        n_down = log - 4
        self.multiple = 2 ** (n_down + 1)
        base = 64
        blocks: list[nn.Module] = [DiscFirstBlock(6, scaled(base, width))]
        for _ in range(n_down):
            nxt = min(base * 2, 512)
            blocks.append(DiscDownBlock(scaled(base, width), scaled(nxt, width)))
            base = nxt
        self.netD = DiscTrunk(blocks, scaled(base, width), style_dim)
        warm_spectral_norm(self)

    def forward(self, img: torch.Tensor, hq: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """img (real or fake LQ) and hq [N, 3, H, W] in [-1, 1], z [N, style_dim] -> [N, 1] logits."""
        _check_image(img, 3, "ReDegSNDiscriminator img")
        if hq.shape != img.shape:
            raise ValueError(f"hq shape {tuple(hq.shape)} differs from img shape {tuple(img.shape)}")
        if img.shape[-2] % self.multiple or img.shape[-1] % self.multiple:
            raise ValueError(
                f"ReDegSNDiscriminator(size={self.size}) needs H, W divisible by {self.multiple}"
            )
        if z.ndim != 2 or z.shape != (img.shape[0], self.style_dim):
            raise ValueError(f"z: expected [{img.shape[0]}, {self.style_dim}], got shape {tuple(z.shape)}")
        return self.netD(torch.cat([img, hq], dim=1), z)


def set_modconv(model: nn.Module, mode: ModConvMode) -> int:
    """Switch every ModulatedConv2d in ``model`` to ``mode`` ("fused" or "grouped") in place.

    The weights are untouched, so the same model can be benchmarked both ways. Returns the
    number of layers switched. Updates ``model.hparams["modconv"]`` when present.
    """
    if mode not in MODCONV_MODES:
        raise ValueError(f"modconv must be one of {MODCONV_MODES}, got {mode!r}")
    n = 0
    for m in model.modules():
        if isinstance(m, ModulatedConv2d):
            m.set_mode(mode)
            n += 1
        hp = getattr(m, "hparams", None)
        if isinstance(hp, dict) and "modconv" in hp:
            hp["modconv"] = mode
    return n


# ---------------------------------------------------------------------------------------------
# Detection from state-dict keys (official files carry no hyperparameters).


def _count(sd: StateDict, pattern: str) -> int:
    """How many consecutive indices i (from 0) have ``pattern.format(i)`` in sd."""
    i = 0
    while pattern.format(i) in sd:
        i += 1
    return i


def detect_degnet(sd: StateDict) -> dict[str, Any] | None:
    if "deg_ecd0.0.weight_orig" not in sd or "final_linear.2.weight" not in sd:
        return None
    n = _count(sd, "deg_ecd{}.0.weight_orig")
    return {
        "size": 2 ** (n + 1),  # log2(size) - 1 conv layers deg_ecd0..
        "style_dim": int(sd["final_linear.2.weight"].shape[0]),  # last Linear's out features
        "width": sd[f"deg_ecd{n - 1}.0.weight_orig"].shape[0] / 512,  # deepest conv: ch[4] = 512*width
    }


def detect_encoder(sd: StateDict) -> dict[str, Any] | None:
    if "ecd0.0.weight_orig" not in sd or "ecdf.0.weight_orig" not in sd:
        return None
    n = _count(sd, "ecd{}.0.weight_orig")
    return {
        "size": 2 ** (n + 1),  # log2(size) - 1 conv layers ecd0..
        "width": sd["ecdf.0.weight_orig"].shape[0] / 512,  # ecdf works at ch[4] = 512*width
    }


def detect_generator(sd: StateDict) -> dict[str, Any] | None:
    if not all(k in sd for k in ("style.1.weight", "conv1.conv.weight", "to_rgb1.conv.weight")):
        return None
    return {
        "size": 2 ** (_count(sd, "to_rgbs.{}.bias") + 2),  # one ToRGB per resolution 8..size
        "style_dim": int(sd["style.1.weight"].shape[1]),  # first MLP Linear's in features
        "n_mlp": _count_mlp(sd),  # Linear layers of the style MLP
        "width": sd["conv1.conv.weight"].shape[1] / 512,  # conv1 (4x4) has ch[4] = 512*width outputs
    }


def _count_mlp(sd: StateDict) -> int:
    # style.0 is PixelNorm; Linear layers sit at odd indices 1, 3, 5, ...
    n = 0
    while f"style.{2 * n + 1}.weight" in sd:
        n += 1
    return n


def detect_discriminator(sd: StateDict) -> dict[str, Any] | None:
    if "netD.models.0.conv1.weight_orig" not in sd or "netD.fc.weight_orig" not in sd:
        return None
    n_blocks = _count(sd, "netD.models.{}.conv1.weight_orig")  # first block + log2(size) - 4 down blocks
    fc = sd["netD.fc.weight_orig"]  # [feat, feat + style_dim]
    return {
        "size": 2 ** (n_blocks + 3),
        "style_dim": int(fc.shape[1] - fc.shape[0]),
        "width": sd["netD.models.0.conv1.weight_orig"].shape[0] / 64,  # first block: 64*width channels
    }


register_arch("redeg_degnet", DegNet, detect_degnet)
register_arch("redeg_syn_encoder", SynNetEncoder, detect_encoder)
register_arch("redeg_syn_generator", SynNetGenerator, detect_generator)
register_arch("redeg_discriminator", ReDegSNDiscriminator, detect_discriminator)
