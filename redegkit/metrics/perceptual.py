"""Full-reference perceptual metrics on VGG16 features: LPIPS and DISTS (torch; imported on demand).

- :class:`LPIPS` (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a
  Perceptual Metric"), VGG variant with the v0.1 linear heads: each image is mapped to [-1, 1],
  shifted and scaled per channel, and passed through VGG16; at relu1_2, relu2_2, relu3_3, relu4_3
  and relu5_3 the features are unit-normalised along the channels, the squared difference of the
  two images' features is weighted per channel by the learned head, averaged over space, and the
  five layers are summed. 0 for identical images.
- :class:`DISTS` (Ding et al. 2020, "Image Quality Assessment: Unifying Structure and Texture
  Similarity"): VGG16 with every max pooling replaced by L2 pooling (a 3x3 Hann-window blur of
  the squared features, stride 2, then a square root); its stages are the raw image and the five
  ReLU outputs above. Per channel, a texture term compares the spatial means and a structure
  term the spatial (co)variances, SSIM-like; the learned alpha and beta weight them.
  ``D = 1 - sum(alpha * S1 + beta * S2)`` with the weights normalised to sum to 1, computed here as
  ``sum(alpha * (1 - S1) + beta * (1 - S2)) / sum(alpha + beta)``: the same value, exactly 0 for
  identical images and never negative.

Both take RGB [N, 3, H, W] float tensors in [0, 1] and return one value per image, [N]; lower
means more similar. Weights come from :mod:`redegkit.weights` (registry entries ``vgg16``,
``lpips-vgg-v0.1``, ``dists-alpha-beta``): an explicit path, ``$REDEG_WEIGHTS_DIR`` or the cache
dir. Nothing here downloads; a missing file raises :class:`~redegkit.weights.WeightsMissingError`
and a file of the wrong layout raises :class:`PerceptualWeightsError` naming it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import weights

PathLike = str | os.PathLike[str]

# torchvision's vgg16().features: the ReLUs tapped (relu1_2 .. relu5_3) and the max poolings
# between them (the last pooling, index 30, is never used).
VGG16_TAPS: tuple[int, ...] = (3, 8, 15, 22, 29)
VGG16_POOLS: tuple[int, ...] = (4, 9, 16, 23)
VGG16_CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 512)
MIN_SIDE = 16  # four 2x poolings leave at least one pixel at relu5_3

# LPIPS v0.1 input scaling, applied after [0, 1] -> [-1, 1] (constants of the published model)
_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)
_LPIPS_EPS = 1e-10  # added to the channel norm before dividing

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_DISTS_C1 = _DISTS_C2 = 1e-6  # stabilising constants of the texture and structure terms
_L2POOL_EPS = 1e-12  # inside the square root of L2 pooling
DISTS_CHANNELS: tuple[int, ...] = (3, *VGG16_CHANNELS)  # the raw image is stage 0

# The registry entries each metric needs: (backbone, head).
NEEDS: dict[str, tuple[str, str]] = {
    "lpips": ("vgg16", "lpips-vgg-v0.1"),
    "dists": ("vgg16", "dists-alpha-beta"),
}


class PerceptualWeightsError(ValueError):
    """A weight file that cannot be read or has the wrong keys or shapes (the message names it)."""


def _read_tensors(path: Path, what: str) -> dict[str, torch.Tensor]:
    """A flat ``{key: tensor}`` file, loaded with ``weights_only=True`` (no code can run)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, pickle with code, not a torch file ...
        raise PerceptualWeightsError(
            f"{path}: not a readable PyTorch file for {what} ({type(e).__name__}: {str(e)[:200]})"
        ) from e
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise PerceptualWeightsError(f"{path}: expected a state dict of tensors for {what}")
    return dict(obj)


def _check_layout(
    got: dict[str, torch.Tensor], want: Mapping[str, tuple[int, ...]], path: Path, what: str
) -> None:
    """Refuse (naming ``path``) any missing, unexpected or misshapen key."""
    from ..models.checkpoints import layout_mismatches

    parts = layout_mismatches(got, want, limit=4)
    if parts:
        raise PerceptualWeightsError("\n  ".join([f"{path}: not the {what} layout", *parts]))


class _L2Pool(nn.Module):
    """DISTS's L2 pooling: sqrt(blur(x^2)) with a normalised 3x3 Hann window, stride 2, padding 1."""

    window: torch.Tensor

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = torch.hann_window(5, periodic=False, dtype=torch.float64)[1:-1]  # 0.5, 1, 0.5
        w = torch.outer(taps, taps)
        w = (w / w.sum()).float().expand(channels, 1, 3, 3).clone()
        self.register_buffer("window", w, persistent=False)  # keeps torchvision's key names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x * x, self.window.to(x.dtype), stride=2, padding=1, groups=x.shape[1])
        return (y + _L2POOL_EPS).sqrt()


class VGG16Trunk(nn.Module):
    """torchvision's ``vgg16().features`` up to relu5_3, returning the five tapped ReLU outputs.

    ``l2_pooling=True`` swaps the max poolings for :class:`_L2Pool` (DISTS). Parameters are
    loaded from a torchvision VGG16 file (keys ``features.N.weight/bias``; ``classifier.*`` and
    any other non-``features`` keys are ignored); they are frozen.
    """

    def __init__(self, path: Path, *, l2_pooling: bool = False) -> None:
        super().__init__()
        from torchvision.models import vgg16

        with torch.device("meta"):  # no allocation, no random init: every parameter is loaded below
            feats = vgg16(weights=None).features
        self.features = feats[: VGG16_TAPS[-1] + 1].to_empty(device="cpu")
        if l2_pooling:
            for i in VGG16_POOLS:
                self.features[i] = _L2Pool(self.features[i - 2].out_channels)
        want = {f"features.{k}": tuple(v.shape) for k, v in self.features.state_dict().items()}
        sd = {k: v for k, v in _read_tensors(path, "torchvision VGG16").items() if k.startswith("features.")}
        _check_layout(sd, want, path, "torchvision VGG16 (vgg16-397923af.pth)")
        self.features.load_state_dict({k[len("features.") :]: v for k, v in sd.items()})
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in VGG16_TAPS:
                out.append(x)
        return out


def _check_pair(name: str, x: torch.Tensor, y: torch.Tensor) -> None:
    if x.ndim != 4 or x.shape[1] != 3 or x.shape != y.shape:
        raise ValueError(
            f"{name}: expected two RGB [N, 3, H, W] tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if min(x.shape[-2:]) < MIN_SIDE:
        raise ValueError(f"{name}: images must be at least {MIN_SIDE}x{MIN_SIDE}, got {tuple(x.shape[-2:])}")


def _resolve(name: str, vgg16: PathLike | None, head: PathLike | None) -> tuple[Path, Path]:
    """The backbone and head files of a metric; one error lists every missing registry entry."""
    found: list[Path] = []
    missing: list[weights.WeightSpec] = []
    for entry, explicit in zip(NEEDS[name], (vgg16, head), strict=True):
        p = weights.find(entry, explicit)  # an explicit path that does not exist raises here
        if p is None:
            missing.append(weights.spec(entry))
        else:
            found.append(p)
    if missing:
        raise weights.WeightsMissingError(missing, weights.weights_dirs())
    return found[0], found[1]


class _Metric(nn.Module):
    """A metric on VGG16 features with a learned head. Frozen and always in eval mode, whatever a
    parent module does."""

    def _load(
        self,
        name: str,
        vgg16: PathLike | None,
        head: PathLike | None,
        what: str,
        head_layout: Mapping[str, tuple[int, ...]],
        *,
        l2_pooling: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Resolve both files (explicit or registry), build the trunk, and return the head file's
        tensors with their layout checked against ``head_layout``."""
        vgg_path, head_path = _resolve(name, vgg16, head)
        self.files = {"vgg16": vgg_path, "head": head_path}
        self.trunk = VGG16Trunk(vgg_path, l2_pooling=l2_pooling)
        sd = _read_tensors(head_path, what)
        _check_layout(sd, head_layout, head_path, what)
        return sd

    def _freeze(self) -> None:
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> _Metric:
        return super().train(False)


class LPIPS(_Metric):
    """LPIPS, VGG16 with the v0.1 linear heads. ``forward(x, y) -> [N]``, images in [0, 1].

    ``vgg16`` / ``head``: explicit files; else the registry entries ``vgg16`` and
    ``lpips-vgg-v0.1``. The head file is the published one: ``lin{k}.model.1.weight`` of shape
    [1, C_k, 1, 1] for k = 0..4. Gradients flow to the inputs (the parameters are frozen).
    """

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, vgg16: PathLike | None = None, head: PathLike | None = None) -> None:
        keys = [f"lin{k}.model.1.weight" for k in range(len(VGG16_CHANNELS))]
        layout = {k: (1, c, 1, 1) for k, c in zip(keys, VGG16_CHANNELS, strict=True)}
        super().__init__()
        sd = self._load("lpips", vgg16, head, "LPIPS VGG head", layout)
        self.heads = nn.ParameterList([nn.Parameter(sd[k].float(), requires_grad=False) for k in keys])
        self.register_buffer("shift", torch.tensor(_LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        self._freeze()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _check_pair("LPIPS", x, y)
        z = torch.cat([x, y]) * 2 - 1
        z = (z - self.shift.to(z.dtype)) / self.scale.to(z.dtype)
        n = x.shape[0]
        total = x.new_zeros(n)
        for f, w in zip(self.trunk(z), self.heads, strict=True):
            f = f / (f.pow(2).sum(1, keepdim=True).sqrt() + _LPIPS_EPS)
            d = (f[:n] - f[n:]).pow(2)
            total = total + F.conv2d(d, w.to(d.dtype)).mean((1, 2, 3))
        return total


class DISTS(_Metric):
    """DISTS. ``forward(x, y) -> [N]``, images in [0, 1].

    ``vgg16`` / ``head``: explicit files; else the registry entries ``vgg16`` and
    ``dists-alpha-beta``. The head file is the published ``weights.pt``: ``alpha`` and ``beta``
    of shape [1, 1475, 1, 1] (3 + 64 + 128 + 256 + 512 + 512 channels, in stage order).
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, vgg16: PathLike | None = None, head: PathLike | None = None) -> None:
        c = sum(DISTS_CHANNELS)
        layout = {"alpha": (1, c, 1, 1), "beta": (1, c, 1, 1)}
        super().__init__()
        sd = self._load("dists", vgg16, head, "DISTS weights.pt", layout, l2_pooling=True)
        head_path = self.files["head"]
        if (
            (sd["alpha"] < 0).any()
            or (sd["beta"] < 0).any()
            or float(sd["alpha"].sum() + sd["beta"].sum()) <= 0
        ):
            raise PerceptualWeightsError(f"{head_path}: DISTS alpha and beta must be >= 0, not all zero")
        self.alpha = nn.Parameter(sd["alpha"].float().flatten(), requires_grad=False)
        self.beta = nn.Parameter(sd["beta"].float().flatten(), requires_grad=False)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self._freeze()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _check_pair("DISTS", x, y)
        z = torch.cat([x, y])
        stages = [z, *self.trunk((z - self.mean.to(z.dtype)) / self.std.to(z.dtype))]
        n = x.shape[0]
        alphas = self.alpha.to(z.dtype).split(DISTS_CHANNELS)
        betas = self.beta.to(z.dtype).split(DISTS_CHANNELS)
        total = x.new_zeros(n)
        for f, a, b in zip(stages, alphas, betas, strict=True):
            fx, fy = f[:n], f[n:]
            mx, my = fx.mean((2, 3), keepdim=True), fy.mean((2, 3), keepdim=True)
            dx, dy = fx - mx, fy - my
            vx, vy, cov = dx.pow(2).mean((2, 3)), dy.pow(2).mean((2, 3)), (dx * dy).mean((2, 3))
            mx, my = mx.flatten(1), my.flatten(1)
            texture = (2 * mx * my + _DISTS_C1) / (mx.pow(2) + my.pow(2) + _DISTS_C1)
            structure = (2 * cov + _DISTS_C2) / (vx + vy + _DISTS_C2)
            total = total + ((1 - texture) * a + (1 - structure) * b).sum(1)
        return total / (self.alpha.sum() + self.beta.sum()).to(z.dtype)


def load_perceptual(
    name: str,
    *,
    device: str | torch.device = "cpu",
    vgg16: PathLike | None = None,
    head: PathLike | None = None,
) -> nn.Module:
    """An LPIPS or DISTS metric (``name``: ``"lpips"`` or ``"dists"``) on ``device``, in eval mode.

    ``vgg16`` / ``head`` are explicit files; else the registry resolves them. Never downloads:
    a missing file raises :class:`~redegkit.weights.WeightsMissingError` naming every entry.
    """
    key = name.lower()
    if key not in NEEDS:
        raise ValueError(f"unknown perceptual metric {name!r}; known: {', '.join(NEEDS)}")
    cls = LPIPS if key == "lpips" else DISTS
    return cls(vgg16=vgg16, head=head).to(device)


def available_perceptual() -> dict[str, str | None]:
    """For each metric: None when its weight files are all found, else a one-line reason.

    Only presence is checked (no hashing; ``redeg weights verify`` does that), nothing is loaded
    and nothing is downloaded.
    """
    out: dict[str, str | None] = {}
    for name, entries in NEEDS.items():
        missing = [e for e in entries if weights.find(e) is None]
        out[name] = (
            None
            if not missing
            else f"missing weights {', '.join(missing)}: run `redeg weights fetch {' '.join(missing)}` "
            f"(or `redeg weights install FILE --name ENTRY`)"
        )
    return out


def _to_tensor(images: Sequence[np.ndarray], device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2).float() / 255.0


def perceptual_scores(
    metric: nn.Module, restored: list[np.ndarray], clean: list[np.ndarray], batch: int = 8
) -> list[float]:
    """``metric(restored[i], clean[i])`` for uint8 RGB HxWx3 pairs, ``batch`` pairs at a time.

    Consecutive pairs of one size share a batch. Runs under ``torch.no_grad`` in eval mode on
    the metric's device.
    """
    if len(restored) != len(clean):
        raise ValueError(f"perceptual_scores: {len(restored)} restored images but {len(clean)} clean ones")
    for i, (r, c) in enumerate(zip(restored, clean, strict=True)):
        if r.dtype != np.uint8 or r.ndim != 3 or r.shape[2] != 3 or r.shape != c.shape or c.dtype != np.uint8:
            raise ValueError(
                f"perceptual_scores: pair {i}: expected two uint8 HxWx3 RGB images of one shape, "
                f"got {r.dtype} {r.shape} and {c.dtype} {c.shape}"
            )
    metric.eval()
    device = next(metric.parameters()).device
    out: list[float] = []
    i = 0
    with torch.no_grad():
        while i < len(restored):
            j = i + 1
            while j < len(restored) and j - i < max(1, batch) and restored[j].shape == restored[i].shape:
                j += 1
            vals = metric(_to_tensor(restored[i:j], device), _to_tensor(clean[i:j], device))
            out.extend(float(v) for v in vals.cpu())
            i = j
    return out
