"""Applying a bank's synthesizer to HQ images: the batched runner, tiling, noise, downsampling.

The encoder and generator are fully convolutional, so any H, W divisible by the encoder's
``multiple`` (64 at size 256) works. Inputs are reflect-padded up to that multiple and the output
is cropped back. Images larger than a tile are cut into overlapping tiles whose outputs are
blended by :mod:`redegkit.io.tiles` (the outer quarter of each overlap dropped, a cosine
cross-fade over its middle half), so no seam appears.

On CUDA the runner uses bf16 autocast, channels_last, the fused modulated conv and
``torch.compile`` (cached per process; eager fallback when compiling fails). On CPU it runs fp32
eager. Nothing here draws random numbers from a global RNG: the optional Gaussian noise is a
counter-based hash of (sample seed, pixel index), identical on every device and batch layout.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..console import log
from ..io.tiles import TileBlender, TileGrid, ceil_to, pad_reflect, run_tiled, tile_starts  # noqa: F401  (tile_starts: re-exported)
from ..models.redeg import set_modconv
from ..run import RunContext
from .operators import to_device

Interp = Literal["bilinear", "bicubic", "area"]
INTERPS: tuple[str, ...] = ("bilinear", "bicubic", "area")


def _strip_spectral_norm(module: nn.Module) -> nn.Module:
    """Replace every classic spectral-norm hook by the plain weight it computes in eval mode
    (``weight_orig / sigma`` from the stored u, v): the same numbers, without recomputing sigma
    in every forward and with a graph that compiles cleanly. Works on the module in place."""
    from torch.nn.utils import remove_spectral_norm
    from torch.nn.utils.spectral_norm import SpectralNorm

    for m in list(module.modules()):
        for hook in [h for h in m._forward_pre_hooks.values() if isinstance(h, SpectralNorm)]:
            remove_spectral_norm(m, hook.name)
    return module


class _EncodeGenerate(nn.Module):
    """``(hq, z) -> generator(z, encoder(hq))`` as one module, so it compiles as one graph."""

    def __init__(self, encoder: nn.Module, generator: nn.Module) -> None:
        super().__init__()
        self.encoder, self.generator = encoder, generator

    def forward(self, hq: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z, self.encoder(hq))


class Synthesizer:
    """Encoder + generator on one device: ``(hq [N,3,H,W] in [-1,1], z [N,D]) -> LQ [N,3,H,W]`` fp32.

    Device, precision (bf16 autocast on CUDA) and memory layout (channels_last on CUDA) come from
    the :class:`~redegkit.run.RunContext` ``ctx``; the CPU runs fp32 eager, so CPU results are the
    reference. On the CPU every image runs alone (``per_sample``, a batch of one): the low bits of
    oneDNN's convolutions depend on the batch shape, and a sample's bytes must not depend on which
    samples share its batch. ``compile`` (CUDA only) wraps the network in ``torch.compile``; batches
    smaller than ``static_batch`` are then padded to it (repeating the last item), so one compiled
    graph serves the whole run instead of recompiling for the last, short batch.
    """

    def __init__(
        self,
        encoder: nn.Module,
        generator: nn.Module,
        *,
        ctx: RunContext | None = None,
        compile: bool = True,
        modconv: Literal["fused", "grouped"] = "fused",
        static_batch: int | None = None,
        per_sample: bool | None = None,
    ) -> None:
        self.ctx = ctx if ctx is not None else RunContext.local("cpu")
        assert self.ctx.device is not None, "the synthesizer needs a run context with a device"
        self.device: torch.device = self.ctx.device
        # default: per sample on the CPU (batch-invariant bytes), batched on CUDA
        self.per_sample = self.device.type == "cpu" if per_sample is None else per_sample
        cuda = self.ctx.cuda
        # A private copy: inference-only changes (no spectral-norm hooks, modconv form, memory
        # layout) must not leak into the caller's modules.
        self.net = _strip_spectral_norm(copy.deepcopy(_EncodeGenerate(encoder, generator)).eval())
        set_modconv(self.net, modconv)
        self.multiple = int(encoder.multiple)  # type: ignore[arg-type]  # an int attribute of SynNetEncoder
        self.style_dim = int(generator.style_dim)  # type: ignore[arg-type]
        self.bf16 = self.ctx.precision == "bf16"
        # channels_last needs the fused form (the grouped one reshapes to per-sample weights).
        self.channels_last = self.ctx.channels_last and modconv == "fused"
        if self.channels_last:
            self.ctx.place(self.net)
        else:
            self.net.to(self.device)
        self.static_batch = static_batch
        self.compiled: Callable[..., torch.Tensor] | None = None
        self.compile_error: str | None = None
        if cuda and compile:
            self.compiled = torch.compile(self.net)

    def _run(self, net: Callable[..., torch.Tensor], x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), self.ctx.autocast():
            return net(x, z).float()

    def __call__(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        x, z = to_device(x, self.device), to_device(z.float(), self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.per_sample and n > 1:
            return torch.cat([self._run(self.net, x[i : i + 1], z[i : i + 1]) for i in range(n)])
        if self.compiled is not None:
            if self.static_batch and n < self.static_batch:
                rep = self.static_batch - n
                x = torch.cat([x, x[-1:].expand(rep, *x.shape[1:])])
                z = torch.cat([z, z[-1:].expand(rep, -1)])
            try:
                return self._run(self.compiled, x, z)[:n]
            except torch.cuda.OutOfMemoryError:
                raise  # too big a batch, not a compiler failure: eager would not fit either
            except Exception as e:  # a compiler failure must not stop a run: fall back to eager
                self.compile_error = f"{type(e).__name__}: {str(e)[:300]}"
                log.warning("torch.compile failed (%s); running the synthesizer eagerly", self.compile_error)
                self.compiled = None
        return self._run(self.net, x[:n], z[:n])


# ------------------------------------------------------------------------------------------------
# Tiling (the layout and the blending are redegkit.io.tiles'; here: the synthesizer's padding)


@dataclass
class TilePlan:
    """How one image [3, h, w] is cut: padded to ``grid.h`` x ``grid.w``, then ``grid``'s tiles."""

    h: int
    w: int
    grid: TileGrid

    @property
    def ph(self) -> int:
        return self.grid.h

    @property
    def pw(self) -> int:
        return self.grid.w

    @property
    def shape(self) -> tuple[int, int]:
        return self.grid.th, self.grid.tw

    @property
    def origins(self) -> list[tuple[int, int]]:
        return self.grid.origins


def plan_tiles(h: int, w: int, tile: int, overlap: int, multiple: int) -> TilePlan:
    """One tile (padded to ``multiple``) when the image fits in ``tile``; else ``tile``-sized tiles
    with ``overlap`` (both rounded to ``multiple``) over the image padded to at least ``tile``."""
    tile = max(multiple, ceil_to(tile, multiple))
    if h <= tile and w <= tile:
        ph, pw = ceil_to(h, multiple), ceil_to(w, multiple)
        return TilePlan(h, w, TileGrid(ph, pw, ph, pw, (0,), (0,)))
    overlap = min(ceil_to(overlap, multiple) if overlap > 0 else 0, tile - multiple)
    ph, pw = max(ceil_to(h, multiple), tile), max(ceil_to(w, multiple), tile)
    return TilePlan(h, w, TileGrid.cover(ph, pw, tile, overlap))


class TiledImage:
    """One HQ image [3, h, w] in [-1, 1] on its way through the synthesizer, tile by tile."""

    def __init__(self, hq: torch.Tensor, plan: TilePlan) -> None:
        self.plan = plan
        self.x = pad_reflect(hq, plan.ph - plan.h, plan.pw - plan.w)
        self.pending = len(plan.grid)
        self.blend = TileBlender(plan.grid, 1, hq.device)

    def hq(self) -> torch.Tensor:
        """The HQ input [3, h, w] (without the padding)."""
        return self.x[:, : self.plan.h, : self.plan.w]

    def tile(self, i: int) -> torch.Tensor:
        return self.plan.grid.crop(self.x, i)

    def add(self, i: int, out: torch.Tensor) -> None:
        """Blend tile ``i``'s output [3, th, tw] (any device) into the image."""
        self.pending -= 1
        self.blend.add(i, out)

    def result(self) -> torch.Tensor:
        """The blended output [3, h, w] (after every tile was added)."""
        assert self.pending == 0
        return self.blend.result()[:, : self.plan.h, : self.plan.w]


def synthesize_image(
    synth: Synthesizer,
    hq: torch.Tensor,
    z: torch.Tensor,
    *,
    tile: int = 512,
    overlap: int = 64,
    batch: int = 8,
) -> torch.Tensor:
    """One image [3, h, w] under one embedding z [D] -> LQ at HQ resolution [3, h, w] (fp32): the
    tiles and blending of :class:`TiledImage` (``synthesize``'s), through :func:`run_tiled`."""
    h, w = hq.shape[-2:]
    plan = plan_tiles(h, w, tile, overlap, synth.multiple)
    x = pad_reflect(hq.to(synth.device), plan.ph - h, plan.pw - w)[None]
    zb = z.reshape(1, -1)
    out = run_tiled(lambda t: synth(t, zb.expand(len(t), -1)), x, plan.grid, batch=batch)
    return out[0, :, :h, :w]
