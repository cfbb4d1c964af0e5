"""Tiled inference for the networks: cut an image into overlapping tiles, run them, blend them back.

One tiler serves the bank's synthesizer (:mod:`redegkit.bank.apply`, same-size output) and SR
upscaling (:mod:`redegkit.sr.upscale`, ``scale`` times larger):

- :func:`tile_starts`: where the tiles of one axis begin (uniform stride, the last tile flush
  with the end, so every tile has the full size);
- :func:`blend_ramp` / :func:`tile_weights`: each tile's 1-D blending weights;
- :class:`TileGrid` + :class:`TileBlender`: a tile layout and the accumulator that blends tile
  outputs arriving in any order (the bank's producer batches tiles of several images together);
- :func:`run_tiled`: the whole loop for one tensor and one function.

The blending window. In an overlap of ``ov`` pixels between two neighbouring tiles, the outer
quarter of each tile's side gets weight 0, the middle half a raised-cosine cross-fade
``(1 - cos(pi u)) / 2`` from 0 to 1, and the rest 1. Why this shape and not a linear ramp over the
whole overlap: a convolutional network's output near a tile's edge is wrong (its receptive field
sees the network's zero padding, not the neighbouring pixels), so the edge pixels must not count
at all, which a ramp starting above 0 at the edge does not give; and the cosine has zero slope at
both ends, so the weights have no kink that could show as a faint line. The two tiles' weights
are complementary (``w(u) + w(1 - u) = 1``), so in a two-tile overlap they already sum to 1; where
a short last tile makes three tiles overlap, :func:`tile_weights` normalises them per pixel. Sides
without a neighbour (the image border) get weight 1 throughout.

The weights are separable: a tile's 2-D window is the outer product of its row and column
weights, and since each axis's weights sum to 1, so do the 2-D windows: no per-pixel division.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def ceil_to(n: int, m: int) -> int:
    """``n`` rounded up to a multiple of ``m``."""
    return -(-n // m) * m


def tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    """Starts of tiles of length ``tile`` covering ``0..n`` with at least ``overlap`` shared pixels
    between neighbours (stride ``tile - overlap``, at least 1); the last tile ends at ``n``. One
    tile at 0 when ``n <= tile``."""
    if n <= tile:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, n - tile + 1, stride))
    if starts[-1] != n - tile:
        starts.append(n - tile)
    return starts


def blend_ramp(n: int, lead: int, trail: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The raw 1-D window (float32, length ``n``) of a tile overlapping its previous neighbour by
    ``lead`` pixels and its next one by ``trail`` (0: no neighbour on that side): see the module
    docstring. Positions are pixel centres."""
    w = torch.ones(n, device=device, dtype=torch.float32)
    t = torch.arange(n, device=device, dtype=torch.float32) + 0.5
    for ov, pos in ((lead, t), (trail, n - t)):
        if ov <= 0:
            continue
        u = ((pos - ov / 4) / (ov / 2)).clamp(0, 1)
        w = w * (0.5 - 0.5 * torch.cos(math.pi * u))
    return w


def tile_weights(
    starts: list[int], tile: int, scale: int = 1, device: torch.device | str = "cpu"
) -> list[torch.Tensor]:
    """Blending weights of the tiles of one axis at output resolution (length ``tile * scale``
    each; tiles begin at ``starts``, in input pixels): summed at every output position, they give 1."""
    last = len(starts) - 1
    raw = []
    for i, s in enumerate(starts):
        lead = max(0, starts[i - 1] + tile - s) if i > 0 else 0
        trail = max(0, s + tile - starts[i + 1]) if i < last else 0
        raw.append(blend_ramp(tile * scale, lead * scale, trail * scale, device))
    if len(raw) == 1:
        return raw
    total = torch.zeros((starts[-1] + tile) * scale, device=device)
    for s, w in zip(starts, raw, strict=True):
        total[s * scale : (s + tile) * scale] += w
    return [w / total[s * scale : (s + tile) * scale] for s, w in zip(starts, raw, strict=True)]


def pad_reflect(x: torch.Tensor, ph: int, pw: int) -> torch.Tensor:
    """Pad [..., H, W] (3-D or 4-D) at the bottom/right by ``ph``, ``pw``: mirrored, in steps where
    the pad is larger than the image; edge replication where the image is too small to mirror."""
    if ph == 0 and pw == 0:
        return x
    h, w = x.shape[-2:]
    while ph > 0 or pw > 0:  # reflect needs pad < size; grow in steps for tiny images
        sh, sw = min(ph, h - 1), min(pw, w - 1)
        if sh <= 0 and ph > 0 or sw <= 0 and pw > 0:
            return F.pad(x, (0, pw, 0, ph), mode="replicate")
        x = F.pad(x, (0, sw, 0, sh), mode="reflect")
        ph, pw, h, w = ph - sh, pw - sw, h + sh, w + sw
    return x


@dataclass(frozen=True)
class TileGrid:
    """Tiles of ``th`` x ``tw`` over an ``h`` x ``w`` image: row starts ``ys``, column starts ``xs``;
    tile ``i`` is row ``i // len(xs)``, column ``i % len(xs)``."""

    h: int
    w: int
    th: int
    tw: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]

    @classmethod
    def cover(cls, h: int, w: int, tile: int, overlap: int) -> TileGrid:
        """Tiles of at most ``tile`` (never larger than the image) with ``overlap`` (see
        :func:`tile_starts`); one tile when the image fits."""
        th, tw = min(tile, h), min(tile, w)
        return cls(h, w, th, tw, tuple(tile_starts(h, th, overlap)), tuple(tile_starts(w, tw, overlap)))

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)

    @property
    def origins(self) -> list[tuple[int, int]]:
        """``(y, x)`` of every tile, row-major."""
        return [(y, x) for y in self.ys for x in self.xs]

    def crop(self, img: torch.Tensor, i: int) -> torch.Tensor:
        """Tile ``i`` of ``img`` [..., h, w] (a view)."""
        y, x = self.ys[i // len(self.xs)], self.xs[i % len(self.xs)]
        return img[..., y : y + self.th, x : x + self.tw]


class TileBlender:
    """Collects the outputs of a :class:`TileGrid`'s tiles, ``scale`` times the tile size, each
    [..., C, th*scale, tw*scale], in any order, into the blended [..., C, h*scale, w*scale].

    The canvas lives on ``device`` (default: the first output's) in float32 or wider. A single-tile
    grid keeps its one output as it is (no copy, no device move).
    """

    def __init__(self, grid: TileGrid, scale: int = 1, device: torch.device | str | None = None) -> None:
        self.grid, self.scale, self.device = grid, scale, device
        self.canvas: torch.Tensor | None = None
        self.wy: list[torch.Tensor] = []
        self.wx: list[torch.Tensor] = []

    def add(self, i: int, out: torch.Tensor) -> None:
        g, s = self.grid, self.scale
        if len(g) == 1:
            self.canvas = out
            return
        if self.canvas is None:
            dev = out.device if self.device is None else torch.device(self.device)
            dtype = torch.promote_types(out.dtype, torch.float32)
            self.canvas = torch.zeros(*out.shape[:-2], g.h * s, g.w * s, device=dev, dtype=dtype)
            self.wy = tile_weights(list(g.ys), g.th, s, dev)
            self.wx = tile_weights(list(g.xs), g.tw, s, dev)
        r, c = divmod(i, len(g.xs))
        y, x = g.ys[r] * s, g.xs[c] * s
        win = self.wy[r][:, None] * self.wx[c][None, :]
        self.canvas[..., y : y + g.th * s, x : x + g.tw * s] += out.to(self.canvas) * win

    def result(self) -> torch.Tensor:
        """The blended image (once every tile was added)."""
        assert self.canvas is not None, "no tile was added"
        return self.canvas


def run_tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: int | TileGrid | None,
    overlap: int = 0,
    scale: int = 1,
    *,
    batch: int = 1,
) -> torch.Tensor:
    """``fn`` over ``x`` [N, C, H, W] in overlapping tiles, blended: [N, C', H*scale, W*scale].

    ``fn`` maps [B, C, th, tw] to [B, C', th*scale, tw*scale]; it gets the N images' tiles
    ``batch`` tiles at a time (B = N * batch, tile by tile). ``tile`` is the largest tile side
    (tiles by :meth:`TileGrid.cover` with ``overlap``) or a ready :class:`TileGrid` of ``x``'s size;
    None, or a tile not smaller than the image, is one call on ``x`` itself. The caller pads ``x``
    to whatever size ``fn`` needs (see :func:`pad_reflect`) and crops the result.
    """
    n = x.shape[0]
    grid = TileGrid.cover(x.shape[-2], x.shape[-1], tile, overlap) if isinstance(tile, int) else tile
    if grid is not None and (grid.h, grid.w) != tuple(x.shape[-2:]):
        raise ValueError(f"run_tiled: a tile grid of {grid.h}x{grid.w} for an image of {tuple(x.shape[-2:])}")
    if grid is None or len(grid) == 1:
        return fn(x)
    blend = TileBlender(grid, scale, x.device)
    for a in range(0, len(grid), batch):
        ids = range(a, min(len(grid), a + batch))
        out = fn(torch.cat([grid.crop(x, i) for i in ids]))
        for k, i in enumerate(ids):
            blend.add(i, out[k * n : (k + 1) * n])
    return blend.result()
