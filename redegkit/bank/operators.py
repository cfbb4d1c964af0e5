"""The calibration operators, one implementation each, used by bake (measuring a pair) and by
synthesis (applying a bank): the counter-based noise (:func:`hash_normal`), its spatial and
channel shaping (:func:`shape_noise`), the Gaussian low-pass of the colour band
(:func:`gaussian_blur`), the per-image 7x7 filters (:func:`filter_each`), the colour map
(:func:`color_map`), the whole calibration (:func:`apply_calibration`), downsampling and the
final quantisation (:func:`finalize`, :func:`finish_on_host`). The JPEG step is
:func:`redegkit.degrade.ops.jpeg` on both sides.

All take and return float tensors in [-1, 1], [N, 3, H, W] (or [3, H, W] where stated), on any
device; nothing draws from a global RNG.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..io.images import u8_to_unit


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host -> device without waiting for the queued GPU work: a copy from pageable memory would
    synchronise with the stream and stall the CPU until the running batch is done."""
    if device.type != "cuda" or t.is_cuda:
        return t
    return t.pin_memory().to(device, non_blocking=True)


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


PSD_BINS = 8  # radial frequency bands of a bank's noise spectrum (``noise_psd`` [N, PSD_BINS, 3, 3])
PSD_FMAX = 0.5 * math.sqrt(2.0)  # cycles per pixel at the corner of the frequency square


def psd_band(rho: np.ndarray) -> np.ndarray:
    """Position of radial frequencies (cycles per pixel) on the band axis: band ``b`` is centred
    at ``b``, so a frequency at ``b + t`` lies between the centres of bands ``b`` and ``b + 1``."""
    return rho / (PSD_FMAX / PSD_BINS) - 0.5


def band_weights(h: int, w: int, *, half: bool = False) -> np.ndarray:
    """Hat weights [PSD_BINS, h, w] over the DFT frequencies of an h x w field (``half``: only
    ``rfft2``'s w // 2 + 1 columns): the spectrum between band centres is linear in frequency,
    flat beyond the first and the last centre."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = (np.fft.rfftfreq(w) if half else np.fft.fftfreq(w))[None, :]
    pos = np.clip(psd_band(np.sqrt(fy**2 + fx**2)), 0, PSD_BINS - 1)
    lo = np.minimum(np.floor(pos), PSD_BINS - 2)
    t = pos - lo
    bands = np.arange(PSD_BINS)[:, None, None]
    return (1 - t) * (bands == lo) + t * (bands == lo + 1)


def psd_top_share(psd) -> float:
    """A noise spectrum [PSD_BINS, 3, 3] in one number, for reports: the share of its power (the
    bands' traces) in the upper half of the bands. White noise: 0.5; grain under JPEG or blur: less."""
    p = np.trace(np.asarray(psd, np.float64), axis1=-2, axis2=-1)
    return float(p[..., PSD_BINS // 2 :].sum(-1) / max(float(p.sum(-1)), 1e-30))


@functools.lru_cache(maxsize=16)
def _band_weights(h: int, w: int, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(band_weights(h, w, half=True)).float().to(device)


def spectral_noise(white: torch.Tensor, psd: torch.Tensor) -> torch.Tensor:
    """White standard-normal noise [N, 3, H, W] -> a stationary field whose cross-spectral density
    (on the scale where white noise reads 1 at every frequency) is ``psd`` [N, PSD_BINS, 3, 3] at
    the band centres, linear in between: per frequency, the 3x3 square root of the band's matrix
    mixes the channels, so luma and chroma keep their own spectra (JPEG's chroma subsampling
    removes the chroma's high band only). Its channel covariance is the spectrum's mean over the
    frequency square. Periodic (the FFT's): noise has no borders to respect."""
    n, c, h, w = white.shape
    x = torch.fft.rfft2(white.float())
    wl, v = torch.linalg.eigh(psd.to(white.device, torch.float64))
    root = ((v * wl.clamp_min(0).sqrt()[..., None, :]) @ v.transpose(-1, -2)).to(x.dtype)  # [N, B, 3, 3]
    wgt = _band_weights(h, w, white.device)
    y = torch.zeros_like(x)
    for b in range(PSD_BINS):
        y += wgt[b] * torch.einsum("nij,njhw->nihw", root[:, b], x)
    return torch.fft.irfft2(y, s=(h, w))


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


def filter_each(x: torch.Tensor, kern: torch.Tensor) -> torch.Tensor:
    """[M, 3, H, W], each image correlated with its own [k, k] kernel (``kern`` [M, k, k], shared by
    the channels), reflect borders: one grouped convolution for the whole batch."""
    m, c, h, w = x.shape
    r = kern.shape[-1] // 2
    xp = F.pad(x, (r, r, r, r), mode="reflect").reshape(1, m * c, h + 2 * r, w + 2 * r)
    weight = kern.repeat_interleave(c, dim=0)[:, None]  # [M*3, 1, k, k]
    return F.conv2d(xp, weight, groups=m * c).reshape(m, c, h, w)


def apply_filters(hq: torch.Tensor, y: torch.Tensor, kern: torch.Tensor) -> torch.Tensor:
    """The calibration's linear part ``f0 * hq + f1 * y`` (``kern`` [M, 2, k, k])."""
    return filter_each(hq, kern[:, 0]) + filter_each(y, kern[:, 1])


def lowpass(x: torch.Tensor) -> torch.Tensor:
    """The colour band: a Gaussian of radius :data:`COLOR_SIGMA` (:func:`gaussian_blur`)."""
    return gaussian_blur(x, COLOR_SIGMA)


def color_map(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """The affine colour map ``m`` [M, 3, 4] (``M[:, :3] @ rgb + M[:, 3]``) of [M, 3, H, W]."""
    return torch.einsum("mij,mjhw->mihw", m[:, :, :3], x) + m[:, :, 3, None, None]


def recolor(y: torch.Tensor, hq: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``y``'s detail over the HQ's low frequencies through the colour map ``m`` [M, 3, 4]:
    ``y - LP(y) + color(LP(hq))``."""
    return y - lowpass(y) + color_map(lowpass(hq), m)


def _rows(posts: Sequence[dict[str, Any] | None], keep: Callable[[dict[str, Any]], bool]) -> list[int]:
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


def apply_calibration(
    y: torch.Tensor, hq: torch.Tensor, posts: Sequence[dict[str, Any] | None]
) -> torch.Tensor:
    """Generator outputs [N, 3, H, W] in [-1, 1] and their HQ inputs -> the degraded images before
    JPEG and downsampling, per sample ``pp[i]`` (None: unchanged):

    ``lq = hq + strength * (d - LP(d) + color(LP(hq)) - hq) + strength * noise`` with
    ``d = f0 * hq + f1 * y``, where ``f0, f1`` are the bank's two filters [2, k, k] (shared by the
    channels), ``LP`` a Gaussian of radius COLOR_SIGMA and ``color`` the bank's affine map [3, 4] and
    ``noise`` a field drawn from ``noise_seed`` with the bank's spectrum ``noise_psd`` (banks baked
    before it: channel covariance ``noise_cov`` and correlation radius ``noise_corr``; see
    :mod:`.calibrate`). Strength 0 gives exactly the HQ.

    Vectorised over the batch: each step runs once for the samples it applies to (one grouped
    convolution for the filters, one hash and one FFT for the noise of every sample with a
    spectrum), so the kernel count does not grow with the batch. The values in ``posts`` may be
    nested lists (the shard JSON's numbers) or arrays."""
    if all(p is None for p in posts):
        return y
    dev = y.device
    pp: list[dict[str, Any]] = [p if p is not None else {} for p in posts]  # rows below are not None
    out = y.float().clone()
    hqf = hq.float()

    rows = _rows(posts, lambda p: p.get("filter") is not None)
    if rows:
        r = _Rows(rows, out.shape[0], dev)
        k = _host_values(
            np.stack([np.asarray(pp[i]["filter"], np.float32) for i in rows]), dev
        )  # [M, 2, k, k]
        r.put(out, apply_filters(r.get(hqf), r.get(out), k))

    rows = _rows(posts, lambda p: _nonzero(p.get("color")))  # all 0: no colour map
    if rows:  # low frequencies from the HQ through the colour map
        r = _Rows(rows, out.shape[0], dev)
        m = _host_values(np.stack([np.asarray(pp[i]["color"], np.float32) for i in rows]), dev)  # [M, 3, 4]
        r.put(out, recolor(r.get(out), r.get(hqf), m))

    rows = _rows(posts, lambda p: float(p["strength"]) != 1.0)
    if rows:
        r = _Rows(rows, out.shape[0], dev)
        s = _host_values([float(pp[i]["strength"]) for i in rows], dev)[:, None, None, None]
        h = r.get(hqf)
        r.put(out, h + s * (r.get(out) - h))

    noisy = _rows(posts, lambda p: float(p["strength"]) > 0 and _nonzero(p.get("noise_cov")))
    groups: dict[float | None, list[int]] = {}  # None: a spectrum; else (banks baked before it) a radius
    for i in noisy:
        spectral = _nonzero(pp[i].get("noise_psd"))
        groups.setdefault(None if spectral else float(pp[i].get("noise_corr", 0.0)), []).append(i)
    for corr, rows in groups.items():
        r = _Rows(rows, out.shape[0], dev)
        white = hash_normal([int(pp[i]["noise_seed"]) for i in rows], tuple(out.shape[1:]), dev)
        s = _host_values([float(pp[i]["strength"]) for i in rows], dev)[:, None, None, None]
        if corr is None:
            psd = _host_values(np.stack([np.asarray(pp[i]["noise_psd"], np.float32) for i in rows]), dev)
            field = spectral_noise(white, psd)
        else:
            cov = _host_values(np.stack([np.asarray(pp[i]["noise_cov"], np.float32) for i in rows]), dev)
            field = shape_noise(white, cov, corr)
        r.put(out, r.get(out) + s * field)
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
