"""VGG19 features and the perceptual / style (Gram) loss.

The feature extractor uses torchvision's ``vgg19`` key names for its ``features.*`` part, so the
ImageNet file ``vgg19-dcbb9e9d.pth`` loads as published (the classifier keys are ignored). The
file is resolved with :func:`redegkit.weights.resolve` (explicit path, ``$REDEG_WEIGHTS_DIR``,
the cache dir); a missing file raises :class:`~redegkit.weights.WeightsMissingError`. There is
no silent fallback to random weights: ``random_weights=True`` must be asked for (benchmarks).

Inputs are images in [-1, 1]. They are mapped to [0, 1] and then ImageNet-normalised. The
reference normalised [-1, 1] inputs directly (``range_norm: false``); ``reference_range_quirk=True``
reproduces that.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import weights
from .checkpoints import load_raw, load_state_strict, unwrap_state_dict

# VGG19 ("E"): (block, convs, channels). Layer names follow the usual convB_K / reluB_K / poolB.
_BLOCKS: tuple[tuple[int, int, int], ...] = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))


def _layer_table() -> list[tuple[str, int, int]]:
    """[(name, in_channels, out_channels)] in torchvision ``features`` order (index = position)."""
    table: list[tuple[str, int, int]] = []
    cin = 3
    for b, n, c in _BLOCKS:
        for k in range(1, n + 1):
            table.append((f"conv{b}_{k}", cin, c))
            table.append((f"relu{b}_{k}", c, c))
            cin = c
        table.append((f"pool{b}", c, c))
    return table


VGG19_LAYERS: tuple[str, ...] = tuple(name for name, _, _ in _layer_table())
VGG19_INDEX: dict[str, int] = {name: i for i, name in enumerate(VGG19_LAYERS)}
PERCEPTUAL_LAYERS: tuple[str, ...] = ("conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4")

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    """Frozen VGG19 returning the outputs of the requested layers (pre-ReLU for ``conv*``).

    Only the layers up to the deepest requested one are built and loaded. ``forward(x)`` takes
    [N, 3, H, W] in [-1, 1] and returns ``{name: [N, C, h, w]}``. Always in eval mode and with
    ``requires_grad=False`` parameters; gradients still flow to ``x``.
    """

    mean: torch.Tensor  # buffers (ImageNet statistics), registered in __init__
    std: torch.Tensor

    def __init__(
        self,
        layers: Sequence[str] = PERCEPTUAL_LAYERS,
        *,
        weights_path: str | os.PathLike | None = None,
        reference_range_quirk: bool = False,
        random_weights: bool = False,
    ) -> None:
        super().__init__()
        unknown = [n for n in layers if n not in VGG19_INDEX]
        if unknown or not layers:
            raise ValueError(
                f"unknown VGG19 layer(s) {unknown or '(none given)'}; known: {', '.join(VGG19_LAYERS)}"
            )
        self.layers = tuple(layers)
        self.reference_range_quirk = reference_range_quirk
        last = max(VGG19_INDEX[n] for n in layers)
        mods: list[nn.Module] = []
        for name, cin, cout in _layer_table()[: last + 1]:
            if name.startswith("conv"):
                mods.append(nn.Conv2d(cin, cout, 3, 1, 1))
            elif name.startswith("relu"):
                # Not inplace: the pre-ReLU output that was just captured must stay intact.
                mods.append(nn.ReLU(inplace=False))
            else:
                mods.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*mods)
        self._wanted = {VGG19_INDEX[n]: n for n in layers}
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.weights_file: Path | None = None
        if not random_weights:
            self.weights_file = weights.resolve("vgg19", weights_path)
            self._load(self.weights_file)
        self.requires_grad_(False)
        self.eval()

    def _load(self, path: Path) -> None:
        sd, _ = unwrap_state_dict(load_raw(path), str(path))
        own = self.state_dict()
        # The file holds all of VGG19 (and the classifier); keep only what this truncated net has.
        # Missing or misshapen keys among those are still errors (load_state_strict).
        load_state_strict(self, {k: v for k, v in sd.items() if k in own}, str(path))

    def train(self, mode: bool = True) -> VGG19Features:
        # A loss network stays in eval mode whatever its parent does.
        return super().train(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG19Features: expected [N, 3, H, W] in [-1, 1], got shape {tuple(x.shape)}")
        if not self.reference_range_quirk:
            x = (x + 1) * 0.5
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._wanted:
                out[self._wanted[i]] = x
        return out


def gram_matrix(f: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, C] Gram matrix normalised by C*H*W, computed in fp32 (also under autocast)."""
    n, c, h, w = f.shape
    with torch.autocast(device_type=f.device.type, enabled=False):
        f = f.float().reshape(n, c, h * w)
        return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


_CRITERIA = {"l1": F.l1_loss, "l2": F.mse_loss, "mse": F.mse_loss}


class PerceptualLoss(nn.Module):
    """Perceptual (feature) and style (Gram) losses on VGG19 features.

    ``forward(x, gt) -> (percep, style)``, two fp32 scalars:
    ``percep = perceptual_weight * sum_l w_l * crit(F_l(x), F_l(gt))`` and
    ``style = style_weight * sum_l w_l * crit(G(F_l(x)), G(F_l(gt)))`` with ``G`` the Gram matrix
    normalised by C*H*W. A zero weight returns a zero tensor and skips that computation. ``gt``
    features are computed without gradient; ``x`` gets gradients; VGG parameters are frozen.
    Images are [N, 3, H, W] in [-1, 1].
    """

    def __init__(
        self,
        layer_weights: Mapping[str, float],
        perceptual_weight: float = 1.0,
        style_weight: float = 0.0,
        criterion: str = "l1",
        weights_path: str | os.PathLike | None = None,
        *,
        reference_range_quirk: bool = False,
        random_weights: bool = False,
    ) -> None:
        super().__init__()
        if criterion not in _CRITERIA:
            raise ValueError(f"criterion must be one of {sorted(_CRITERIA)}, got {criterion!r}")
        if not layer_weights:
            raise ValueError("layer_weights is empty: name at least one VGG19 layer")
        self.layer_weights = dict(layer_weights)
        self.perceptual_weight = float(perceptual_weight)
        self.style_weight = float(style_weight)
        self.criterion = criterion
        self._crit = _CRITERIA[criterion]
        self.vgg = VGG19Features(
            list(self.layer_weights),
            weights_path=weights_path,
            reference_range_quirk=reference_range_quirk,
            random_weights=random_weights,
        )

    def forward(self, x: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape != gt.shape:
            raise ValueError(f"PerceptualLoss: x {tuple(x.shape)} and gt {tuple(gt.shape)} differ")
        zero = x.new_zeros((), dtype=torch.float32)
        if self.perceptual_weight == 0 and self.style_weight == 0:
            return zero, zero
        fx = self.vgg(x)
        with torch.no_grad():
            fg = self.vgg(gt.detach())
        percep, style = zero, zero
        for name, w in self.layer_weights.items():
            a, b = fx[name].float(), fg[name].float()
            if self.perceptual_weight != 0:
                percep = percep + w * self._crit(a, b)
            if self.style_weight != 0:
                style = style + w * self._crit(gram_matrix(a), gram_matrix(b))
        return percep * self.perceptual_weight, style * self.style_weight
