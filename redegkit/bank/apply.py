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
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..console import log
from ..io.images import u8_to_unit
from ..io.tiles import TileBlender, TileGrid, ceil_to, pad_reflect, run_tiled, tile_starts  # noqa: F401  (tile_starts: re-exported)
from ..models.redeg import set_modconv

Interp = Literal["bilinear", "bicubic", "area"]
INTERPS: tuple[str, ...] = ("bilinear", "bicubic", "area")


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host -> device without waiting for the queued GPU work: a copy from pageable memory would
    synchronise with the stream and stall the CPU until the running batch is done."""
    if device.type != "cuda" or t.is_cuda:
        return t
    return t.pin_memory().to(device, non_blocking=True)


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


def _channels_last(module: nn.Module) -> None:
    # Per tensor rather than module.to(memory_format=...), which refuses modules holding 5-D
    # tensors (the official modulated-conv weight layout).
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            if t.dim() == 4:
                t.data = t.data.contiguous(memory_format=torch.channels_last)


class _EncodeGenerate(nn.Module):
    """``(hq, z) -> generator(z, encoder(hq))`` as one module, so it compiles as one graph."""

    def __init__(self, encoder: nn.Module, generator: nn.Module) -> None:
        super().__init__()
        self.encoder, self.generator = encoder, generator

    def forward(self, hq: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z, self.encoder(hq))


class Synthesizer:
    """Encoder + generator on one device: ``(hq [N,3,H,W] in [-1,1], z [N,D]) -> LQ [N,3,H,W]`` fp32.

    ``precision`` ("bf16"/"fp32"), ``channels_last`` and ``compile`` apply on CUDA only; CPU runs
    fp32 eager, so CPU results are the reference. With ``compile``, batches smaller than
    ``static_batch`` are padded to it (repeating the last item), so one compiled graph serves the
    whole run instead of recompiling for the last, short batch.
    """

    def __init__(
        self,
        encoder: nn.Module,
        generator: nn.Module,
        *,
        device: torch.device | str = "cpu",
        precision: str = "bf16",
        compile: bool = True,
        modconv: str = "fused",
        channels_last: bool = True,
        static_batch: int | None = None,
    ) -> None:
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        # A private copy: inference-only changes (no spectral-norm hooks, modconv form, memory
        # layout) must not leak into the caller's modules.
        self.net = _strip_spectral_norm(copy.deepcopy(_EncodeGenerate(encoder, generator)).eval()).to(
            self.device
        )
        set_modconv(self.net, modconv)
        self.multiple = int(encoder.multiple)
        self.style_dim = int(generator.style_dim)
        self.bf16 = cuda and precision == "bf16"
        # channels_last needs the fused form (the grouped one reshapes to per-sample weights).
        self.channels_last = cuda and channels_last and modconv == "fused"
        if self.channels_last:
            _channels_last(self.net)
        self.static_batch = static_batch
        self.compiled: nn.Module | None = None
        self.compile_error: str | None = None
        if cuda and compile:
            self.compiled = torch.compile(self.net)

    def _run(self, net: nn.Module, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return net(x, z).float()

    def __call__(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        x, z = to_device(x, self.device), to_device(z.float(), self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
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


# ------------------------------------------------------------------------------------------------
# Noise and downsampling


_M32 = 0xFFFFFFFF


def _mix32(h: torch.Tensor) -> torch.Tensor:
    # An avalanche hash on 32-bit values held in int64. Multipliers stay below 2**31 so products
    # never overflow int64: the result is exact, hence identical on CPU and GPU.
    h = h ^ (h >> 16)
    h = (h * 0x7FEB352D) & _M32
    h = h ^ (h >> 15)
    h = (h * 0x68E31DA5) & _M32
    return h ^ (h >> 16)


def index_on(rows: list[int], device: torch.device) -> torch.Tensor:
    """An int64 index tensor on ``device`` from host ints, without a host-device synchronisation."""
    return to_device(torch.tensor(rows, dtype=torch.int64), torch.device(device))


def _host_values(
    values: list[float] | list[int] | np.ndarray, device: torch.device, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Per-sample numbers (a list or a stacked array) as a tensor on ``device`` (no sync)."""
    t = (
        torch.from_numpy(np.ascontiguousarray(values))
        if isinstance(values, np.ndarray)
        else torch.tensor(values)
    )
    return to_device(t.to(dtype), torch.device(device))


# elements per hashing pass: on a GPU large passes (few launches: a batch of 64 crops of 256² is one
# pass; the int64 temporaries peak near 1 GiB); on the CPU passes that keep the int64 temporaries in
# cache (per-sample-sized passes are faster there than one huge pass)
_HASH_CHUNK = {"cuda": 1 << 24, "cpu": 1 << 18}


def hash_normal(seeds: list[int], shape: tuple[int, ...], device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard normal noise [len(seeds), *shape] (float32): one realisation per 64-bit seed, a
    function of (seed, element index) only (Box-Muller over two hashed uniforms). All seeds are
    hashed together (a few kernels per batch, not per sample)."""
    device = torch.device(device)
    n = math.prod(shape)
    out = torch.empty(len(seeds), n, device=device)
    if not seeds:
        return out.reshape(0, *shape)
    idx = torch.arange(n, device=device, dtype=torch.int64)
    lo_all = _host_values([s & _M32 for s in seeds], device, torch.int64)[:, None]
    hi_all = _host_values([(s >> 32) & _M32 for s in seeds], device, torch.int64)[:, None]
    step = max(1, _HASH_CHUNK.get(device.type, 1 << 22) // max(n, 1))
    for a in range(0, len(seeds), step):
        lo, hi = lo_all[a : a + step], hi_all[a : a + step]
        u1 = _mix32(_mix32((idx * 2) ^ lo) ^ hi)
        u2 = _mix32(_mix32((idx * 2 + 1) ^ lo) ^ hi)
        # 24-bit uniforms in (0, 1): exact in float32.
        f1 = ((u1 >> 8).float() + 0.5) / 16777216.0
        f2 = ((u2 >> 8).float() + 0.5) / 16777216.0
        out[a : a + step] = torch.sqrt(-2.0 * torch.log(f1)) * torch.cos(2.0 * math.pi * f2)
    return out.reshape(len(seeds), *shape)


def gaussian_taps(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian taps of radius ceil(3 sigma) (a single 1 for sigma 0)."""
    if sigma <= 0:
        return torch.ones(1)
    r = max(1, math.ceil(3 * sigma))
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


COLOR_SIGMA = 6.0  # the colour band of the calibration (redegkit.bank.calibrate.COLOR_SIGMA)


def _per_sample_on_cpu(fn, x: torch.Tensor) -> torch.Tensor:
    """``fn(x)`` for a batch; on the CPU one sample at a time, where oneDNN's depthwise
    convolutions run 2-3x slower on a large batch than on its samples one by one (on a GPU one
    launch for the batch is what counts)."""
    if x.device.type != "cpu" or x.shape[0] <= 1:
        return fn(x)
    return torch.cat([fn(x[i : i + 1]) for i in range(x.shape[0])])


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [C, H, W] (or [N, C, H, W]) with reflect borders (replicate where
    the image is too small to reflect), the same taps as :func:`gaussian_taps`."""
    k = gaussian_taps(sigma).to(x.device)
    r = k.numel() // 2
    one = x.dim() == 3
    x = x[None] if one else x
    c = x.shape[1]
    mode = "reflect" if min(x.shape[-2:]) > r else "replicate"

    def blur(t: torch.Tensor) -> torch.Tensor:
        t = F.pad(t, (r, r, 0, 0), mode=mode)
        t = F.conv2d(t, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        t = F.pad(t, (0, 0, r, r), mode=mode)
        return F.conv2d(t, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)

    x = _per_sample_on_cpu(blur, x)
    return x[0] if one else x


def shape_noise(white: torch.Tensor, cov: torch.Tensor, corr: float) -> torch.Tensor:
    """White standard-normal noise [N, 3, H, W] -> noise with spatial correlation ``corr`` (a
    Gaussian radius; the field is renormalised to unit variance) and channel covariance ``cov``
    [3, 3] (or [N, 3, 3])."""
    x = white
    if corr > 0:
        k = gaussian_taps(corr).to(x.device)
        r = k.numel() // 2

        def blur(t: torch.Tensor) -> torch.Tensor:
            t = F.pad(t, (r, r, r, r), mode="reflect")
            t = F.conv2d(t, k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
            return F.conv2d(t, k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)

        x = _per_sample_on_cpu(blur, x)
        x = x / float(k.pow(2).sum())  # variance of white noise under a separable blur: (sum k^2)^2
    cov = cov.to(x.device, torch.float32)
    if cov.dim() == 2:
        cov = cov.expand(x.shape[0], 3, 3)
    # a PSD square root via eigh: works for rank-deficient (grey, or absent) noise, unlike Cholesky
    w, v = torch.linalg.eigh(cov.double())
    root = (v * w.clamp_min(0).sqrt()[:, None, :]) @ v.transpose(1, 2)
    return torch.einsum("nij,njhw->nihw", root.float(), x)


def downsample(y: torch.Tensor, scale: int, interp: str) -> torch.Tensor:
    """[N, 3, H, W] -> [N, 3, H/scale, W/scale].

    ``bilinear`` / ``bicubic``: the reference's resize of the generator output, ``F.interpolate``
    without antialiasing (the kernel keeps its width, so fine detail aliases, as in the LQ the
    reference trains on). ``bilinear-aa`` / ``bicubic-aa``: the same kernels widened by the scale
    (antialiased). ``area``: box average.
    """
    if scale == 1:
        return y
    size = (y.shape[-2] // scale, y.shape[-1] // scale)
    if interp == "area":
        return F.interpolate(y, size=size, mode="area")
    kernel, antialias = interp.removesuffix("-aa"), interp.endswith("-aa")
    if kernel not in ("bilinear", "bicubic"):
        raise ValueError(
            f"interpolation must be bilinear, bicubic, bilinear-aa, bicubic-aa or area, got {interp!r}"
        )
    return F.interpolate(y, size=size, mode=kernel, align_corners=False, antialias=antialias)


def _filter_each(x: torch.Tensor, kern: torch.Tensor) -> torch.Tensor:
    """[M, 3, H, W], each image correlated with its own [k, k] kernel (``kern`` [M, k, k], shared by
    the channels), reflect borders: one grouped convolution for the whole batch."""
    m, c, h, w = x.shape
    r = kern.shape[-1] // 2
    xp = F.pad(x, (r, r, r, r), mode="reflect").reshape(1, m * c, h + 2 * r, w + 2 * r)
    weight = kern.repeat_interleave(c, dim=0)[:, None]  # [M*3, 1, k, k]
    return F.conv2d(xp, weight, groups=m * c).reshape(m, c, h, w)


def _rows(posts: list[dict | None], keep) -> list[int]:
    return [i for i, p in enumerate(posts) if p is not None and keep(p)]


class _Rows:
    """Rows ``rows`` of batch tensors: the tensors themselves when that is every row (no gather or
    scatter copies), else an index gather / scatter."""

    def __init__(self, rows: list[int], n: int, device: torch.device) -> None:
        self.all = rows == list(range(n))
        self.idx = None if self.all else index_on(rows, device)

    def get(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.all else t[self.idx]

    def put(self, t: torch.Tensor, value: torch.Tensor) -> None:
        if self.all:
            t.copy_(value)
        else:
            t[self.idx] = value


def _nonzero(a) -> bool:
    return a is not None and bool(np.any(np.asarray(a)))


def apply_calibration(y: torch.Tensor, hq: torch.Tensor, posts: list[dict | None]) -> torch.Tensor:
    """Generator outputs [N, 3, H, W] in [-1, 1] and their HQ inputs -> the degraded images before
    JPEG and downsampling, per sample ``posts[i]`` (None: unchanged):

    ``lq = hq + strength * (d - LP(d) + color(LP(hq)) - hq) + strength * noise`` with
    ``d = f0 * hq + f1 * y``, where ``f0, f1`` are the bank's two filters [2, k, k] (shared by the
    channels), ``LP`` a Gaussian of radius COLOR_SIGMA and ``color`` the bank's affine map [3, 4] and
    ``noise`` a field with the bank's channel covariance ``noise_cov`` and correlation radius
    ``noise_corr`` drawn from ``noise_seed`` (see :mod:`.calibrate`). Strength 0 gives exactly the HQ.

    Vectorised over the batch: each step runs once for the samples it applies to (one grouped
    convolution for the filters, one hash for the noise of every sample sharing a correlation
    radius), so the kernel count does not grow with the batch. The values in ``posts`` may be
    nested lists (the shard JSON's numbers) or arrays."""
    if all(p is None for p in posts):
        return y
    dev = y.device
    out = y.float().clone()
    hqf = hq.float()

    rows = _rows(posts, lambda p: p.get("filter") is not None)
    if rows:
        r = _Rows(rows, out.shape[0], dev)
        k = _host_values(
            np.stack([np.asarray(posts[i]["filter"], np.float32) for i in rows]), dev
        )  # [M, 2, k, k]
        r.put(out, _filter_each(r.get(hqf), k[:, 0]) + _filter_each(r.get(out), k[:, 1]))

    rows = _rows(posts, lambda p: _nonzero(p.get("color")))  # all 0: no colour map
    if rows:  # low frequencies from the HQ through the colour map
        r = _Rows(rows, out.shape[0], dev)
        m = _host_values(
            np.stack([np.asarray(posts[i]["color"], np.float32) for i in rows]), dev
        )  # [M, 3, 4]
        yi = r.get(out)
        lp_hq = gaussian_blur(r.get(hqf), COLOR_SIGMA)
        r.put(
            out,
            yi
            - gaussian_blur(yi, COLOR_SIGMA)
            + torch.einsum("mij,mjhw->mihw", m[:, :, :3], lp_hq)
            + m[:, :, 3, None, None],
        )

    rows = _rows(posts, lambda p: float(p["strength"]) != 1.0)
    if rows:
        r = _Rows(rows, out.shape[0], dev)
        s = _host_values([float(posts[i]["strength"]) for i in rows], dev)[:, None, None, None]
        h = r.get(hqf)
        r.put(out, h + s * (r.get(out) - h))

    noisy = _rows(posts, lambda p: float(p["strength"]) > 0 and _nonzero(p.get("noise_cov")))
    by_corr: dict[float, list[int]] = {}
    for i in noisy:
        by_corr.setdefault(float(posts[i].get("noise_corr", 0.0)), []).append(i)
    for corr, rows in by_corr.items():
        r = _Rows(rows, out.shape[0], dev)
        white = hash_normal([int(posts[i]["noise_seed"]) for i in rows], tuple(out.shape[1:]), dev)
        cov = _host_values(np.stack([np.asarray(posts[i]["noise_cov"], np.float32) for i in rows]), dev)
        s = _host_values([float(posts[i]["strength"]) for i in rows], dev)[:, None, None, None]
        r.put(out, r.get(out) + s * shape_noise(white, cov, corr))
    return out.clamp_(-1.0, 1.0)


def finish_on_host(
    hq_res: np.ndarray, *, jpeg: int, scale: int, interp: str, sigma: float, seed: int
) -> np.ndarray:
    """The end of the chain for a sample with a calibrated JPEG (CPU, in a worker): JPEG at the HQ
    resolution, then the spec noise, downsampling and rounding exactly as :func:`finalize`."""
    from ..degrade.ops import jpeg as jpeg_op

    x = jpeg_op(hq_res, int(jpeg)) if jpeg else hq_res
    t = u8_to_unit(torch.from_numpy(x).permute(2, 0, 1)[None])
    return finalize(t, scale=scale, interps=[interp], sigmas=[sigma], seeds=[seed])[0].numpy()


def finalize(
    y: torch.Tensor, *, scale: int, interps: list[str], sigmas: list[float], seeds: list[int]
) -> torch.Tensor:
    """Generator outputs [N, 3, H, W] in [-1, 1] -> LQ uint8 [N, H/scale, W/scale, 3] (same device).

    Per sample: add Gaussian noise of std ``sigmas[i]`` (on the [-1, 1] scale; 0 = none) from
    ``seeds[i]``, downsample with ``interps[i]``, then round to uint8 as ``from_tensor`` does.
    Vectorised: one noise pass for the noisy samples, one resize per interpolation in the batch
    (no host-device synchronisation: indices and sigmas go up from pinned host memory).
    """
    y = y.float()
    dev = y.device
    noisy = [i for i, s in enumerate(sigmas) if s > 0]
    if noisy:
        y = y.clone()
        r = _Rows(noisy, y.shape[0], dev)
        sig = _host_values([float(sigmas[i]) for i in noisy], dev)[:, None, None, None]
        r.put(y, r.get(y) + sig * hash_normal([int(seeds[i]) for i in noisy], tuple(y.shape[1:]), dev))
    y = y.clamp(-1.0, 1.0)
    modes = sorted(set(interps))
    if scale == 1:
        out = y
    elif len(modes) == 1:
        out = downsample(y, scale, modes[0])
    else:
        out = torch.empty(y.shape[0], 3, y.shape[-2] // scale, y.shape[-1] // scale, device=dev)
        for mode in modes:
            idx = index_on([i for i, m in enumerate(interps) if m == mode], dev)
            out[idx] = downsample(y[idx], scale, mode)
    return out.clamp(-1.0, 1.0).add(1.0).mul(127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
